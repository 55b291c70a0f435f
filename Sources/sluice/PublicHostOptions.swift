import ArgumentParser
import SluiceCore
import SluiceHTTP

/// `--public-host`: names a process's HTTP listener answers to besides loopback names, IP
/// addresses and `--host`, for `serve` (the API and console) and `worker` (its `/metrics`).
struct PublicHostOptions: ParsableArguments {
    @Option(name: .customLong("public-host"), help: ArgumentHelp(
        "Another name this process answers to over HTTP, besides loopback names, IP addresses and --host (repeatable; SLUICE_PUBLIC_HOST, comma-separated). Requests with another Host are refused (DNS rebinding), and so are pages of another origin, except pages on these names.",
        valueName: "name"))
    var publicHosts: [String] = []

    /// The names given: the flags, else the variable (the flags win, as for every setting: not added to it).
    func names(environment: [String: String]) throws(SluiceError) -> [String] {
        let names = !publicHosts.isEmpty ? publicHosts
            : (environment["SLUICE_PUBLIC_HOST"]?.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } ?? [])
        for name in names where name.isEmpty || name.contains(where: { "/: @".contains($0) }) && !HostNames.isIPAddress(name) {
            throw SluiceError(.invalidArgument, "--public-host \(name): give a host name alone, without scheme, port or path (any port is allowed)", field: "public-host")
        }
        return names
    }
}
