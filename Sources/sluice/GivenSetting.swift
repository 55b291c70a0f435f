/// A command-line setting's text and how the user gave it, so that an error names what they typed:
/// the flag (`--port abc`), or the environment variable it came from (`SLUICE_PORT=abc`) when the
/// flag was left out. A flag wins over the variable, and the variable over the default.
struct GivenSetting {
    let text: String
    let spelled: String

    init(flag: String, _ flagValue: String?, variable: String? = nil, environment: [String: String] = [:], default fallback: String) {
        if let flagValue {
            text = flagValue
            spelled = "\(flag) \(flagValue)"
        } else if let variable, let value = environment[variable] {
            text = value
            spelled = "\(variable)=\(value)"
        } else {
            text = fallback
            spelled = "\(flag) \(fallback)"
        }
    }
}
