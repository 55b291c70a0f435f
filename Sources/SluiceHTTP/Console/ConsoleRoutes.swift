import Foundation
import Hummingbird
import SluiceCore

/// One console request as the pages see it: its parameters, its CSRF token, and whether it asks
/// only for the live part of the page (the 2-second refresh).
struct ConsoleRequest: Sendable {
    var parameters: [(String, String)]
    var csrf: String
    /// The CSRF cookie must be set on the response (the browser had none).
    var newCSRF: Bool
    var fragment: Bool
    var signedIn: Bool
    /// This page's address without its notice: the reload link shown when JavaScript is off.
    var reload = "/ui/"
    /// The notice of the change that led here, when this process signed it.
    var notice: String?

    func get(_ name: String) -> String? { parameters.last { $0.0 == name }?.1 }
    func all(_ name: String) -> [String] { parameters.filter { $0.0 == name }.map(\.1) }
}

/// The web console at `/ui/`: server-rendered pages over the same functions as the API, refreshed
/// by fetching the page's live part every 2 s. Reading works without JavaScript; every change is a
/// form POST with a CSRF token. With tokens, a sign-in page sets an HttpOnly, SameSite=Strict
/// session cookie; without, the console obeys the API's loopback and origin rules.
extension SluiceAPI {
    func addConsole(to router: Router<SluiceRequestContext>) {
        router.get("/ui/assets/console.css") { _, _ in Self.asset(ConsoleAssets.css, type: "text/css; charset=utf-8") }
        router.get("/ui/assets/console.js") { _, _ in Self.asset(ConsoleAssets.js, type: "text/javascript; charset=utf-8") }
        router.get("/ui/sign-in") { request, _ in try await signInPage(request, error: nil) }
        router.post("/ui/sign-in") { request, _ in try await signIn(request) }
        router.post("/ui/sign-out") { request, _ in try await consolePost(request) { _ in
            var response = Self.redirect("/ui/sign-in")
            response.headers[values: .setCookie].append(Self.cookie(ConsoleSessions.sessionCookie, "", for: request, maxAge: 0))
            return response
        } }
        router.get("/ui/") { request, _ in try await consolePage(request) { try await overviewPage($0) } }
        router.get("/ui/queues") { request, _ in try await consolePage(request) { try await queuesPage($0) } }
        router.get("/ui/pools") { request, _ in try await consolePage(request) { try await poolsPage($0) } }
        router.get("/ui/tasks") { request, _ in
            // The search form sends every field, empty or not, and args fields as `match`: answer with
            // the canonical URL (the API's own parameters), so that the address bar is a shareable search.
            // A search the API refuses (a bad time, say) goes on to the page, which shows the error.
            let raw = Self.formPairs(request.uri.query ?? "")
            if request.headers[ConsoleHeaders.fragment] == nil, raw.contains(where: { $0.1.isEmpty || $0.0 == "match" }),
               let query = try? TaskQuery.parse(Self.consoleSearch(raw)) {
                return Self.redirect("/ui/tasks?" + query.link())
            }
            return try await consolePage(request) { try await tasksPage($0) }
        }
        router.get("/ui/tasks/{id}") { request, context in
            let id = try context.pathParameter("id")
            return try await consolePage(request) { try await taskPage(id, $0) }
        }
        router.get("/ui/workers") { request, _ in try await consolePage(request) { try await workersPage($0) } }
        router.get("/ui/schedules") { request, _ in try await consolePage(request) { try await schedulesPage($0) } }
        router.post("/ui/queues/pause") { request, _ in try await consolePost(request) { try await pauseFromConsole($0) } }
        router.post("/ui/pools/resize") { request, _ in try await consolePost(request) { try await resizeFromConsole($0) } }
        router.post("/ui/schedules/run") { request, _ in try await consolePost(request) { try await runScheduleFromConsole($0) } }
        router.post("/ui/schedules/enable") { request, _ in try await consolePost(request) { try await enableScheduleFromConsole($0) } }
        router.post("/ui/tasks/bulk") { request, _ in try await consolePost(request) { try await bulkFromConsole($0) } }
        router.post("/ui/tasks/{id}/{action}") { request, context in
            let id = try context.pathParameter("id"), action = try context.pathParameter("action")
            return try await consolePost(request) { try await taskActionFromConsole(id, action, $0) }
        }
    }

    // MARK: - Plumbing

    /// A page (or only its live part): checks the session, renders, sets the CSRF cookie when new.
    func consolePage(_ request: Request, _ render: (ConsoleRequest) async throws -> ConsoleView) async throws -> Response {
        let cookies = Self.cookies(request)
        let signedIn = !sessions.required || cookies[ConsoleSessions.sessionCookie].map { sessions.isValid(session: $0, now: clock.now()) } == true
        let fragment = request.headers[ConsoleHeaders.fragment] == "1"
        guard signedIn else {
            if fragment { return Self.html("signed out", status: .unauthorized) }
            return Self.redirect("/ui/sign-in")
        }
        let existing = cookies[ConsoleSessions.csrfCookie].flatMap { $0.count == 32 ? $0 : nil }
        let parameters = Self.formPairs(request.uri.query ?? "")
        let console = ConsoleRequest(parameters: parameters, csrf: existing ?? ConsoleSessions.newCSRF(), newCSRF: existing == nil,
                                     fragment: fragment, signedIn: sessions.required, reload: Self.withoutNotice(request.uri.path, parameters),
                                     notice: sessions.notice(in: parameters))
        let view: ConsoleView
        do {
            view = try await render(console)
        } catch let error as APIError where !fragment {
            // A page, with the status the API would answer (a missing task is a 404, not a 200).
            view = ConsoleView(title: "Error", section: "", live: "<div class=\"error\">\(HTML.escape(error.message))</div>", status: error.status)
        }
        var response = Self.html(fragment ? view.live : layout(view, console), status: view.status)
        if console.newCSRF {
            response.headers[values: .setCookie].append(Self.cookie(ConsoleSessions.csrfCookie, console.csrf, for: request))
        }
        return response
    }

    /// A change: checks the session and the CSRF token, then runs `act`, which answers (a redirect).
    func consolePost(_ request: Request, _ act: (ConsoleRequest) async throws -> Response) async throws -> Response {
        let cookies = Self.cookies(request)
        // Signed in first: a post without a session is not worth reading.
        guard !sessions.required || cookies[ConsoleSessions.sessionCookie].map({ sessions.isValid(session: $0, now: clock.now()) }) == true else {
            return Self.redirect("/ui/sign-in")
        }
        let form = try await Self.form(request, limit: limits.maxBody)
        let token = form.last { $0.0 == ConsoleSessions.csrfField }?.1
        guard let cookie = cookies[ConsoleSessions.csrfCookie], let token, !cookie.isEmpty,
              BearerAuth<SluiceRequestContext>.constantTimeEqual(Array(cookie.utf8), Array(token.utf8)) else {
            throw APIError(.forbidden, "csrf", "the form's CSRF token is missing or stale; reload the page and try again", field: ConsoleSessions.csrfField)
        }
        let console = ConsoleRequest(parameters: form, csrf: cookie, newCSRF: false, fragment: false, signedIn: sessions.required)
        do {
            return try await act(console)
        } catch let error as APIError {
            // A person sent this form: answer with a page that says what to change, not JSON.
            let back = "<p><a href=\"/ui/\">Overview</a> · <a href=\"/ui/tasks\">Tasks</a> · <a href=\"/ui/pools\">Pools</a></p>"
            return Self.html(layout(ConsoleView(title: "Not done", section: "", live: "<div class=\"error\" role=\"alert\">\(HTML.escape(error.message))</div>\(back)",
                                                refreshes: false), console), status: error.status)
        } catch let error as SluiceError {
            let api = APIError(error)
            return Self.html(layout(ConsoleView(title: "Not done", section: "", live: "<div class=\"error\" role=\"alert\">\(HTML.escape(api.message))</div>",
                                                refreshes: false), console), status: api.status)
        }
    }

    /// The whole page around a view.
    func layout(_ view: ConsoleView, _ request: ConsoleRequest) -> String {
        let sections = [("overview", "/ui/", "Overview"), ("queues", "/ui/queues", "Queues"), ("pools", "/ui/pools", "Pools"),
                        ("tasks", "/ui/tasks", "Tasks"), ("workers", "/ui/workers", "Workers"),
                        ("schedules", "/ui/schedules", "Schedules")]
        let nav = sections.map { "<a href=\"\($0.1)\"\($0.0 == view.section ? " class=\"active\" aria-current=\"page\"" : "")>\($0.2)</a>" }.joined()
        let signOut = request.signedIn ? HTML.button("Sign out", action: "/ui/sign-out", csrf: request.csrf) : ""
        let notice = request.notice.map { "<div class=\"notice\" role=\"status\">\(HTML.escape($0))</div>" } ?? ""
        // The script shows the live controls; without it they would promise a refresh that never
        // comes, so the page offers a plain reload instead.
        let liveControls = view.refreshes
            ? "<span id=\"live-status\" hidden>live</span><span id=\"live-announce\" class=\"announce\" aria-live=\"polite\"></span>"
              + "<button type=\"button\" id=\"live-toggle\" hidden>Pause live</button>"
              + "<noscript><a id=\"reload\" href=\"\(HTML.escape(request.reload))\">Reload</a></noscript>" : ""
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.escape(view.title)) · Sluice</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/assets/console.css"></head>
            <body><header><a class="brand" href="/ui/">Sluice</a><nav>\(nav)</nav><div class="live">\(liveControls)\(signOut)</div></header>
            <main><h1>\(HTML.escape(view.title))</h1>\(notice)\(view.top)<div id="live">\(view.live)</div></main>
            <script src="/ui/assets/console.js"></script></body></html>
            """
    }

    /// The sign-in page (only with tokens).
    func signInPage(_ request: Request, error: String?, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard sessions.required else { return Self.redirect("/ui/") }
        let existing = Self.cookies(request)[ConsoleSessions.csrfCookie].flatMap { $0.count == 32 ? $0 : nil }
        let csrf = existing ?? ConsoleSessions.newCSRF()
        let message = error.map { "<div class=\"error\" role=\"alert\">\(HTML.escape($0))</div>" } ?? ""
        var response = Self.html("""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Sign in · Sluice</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/assets/console.css"></head>
            <body><header><span class="brand">Sluice</span></header><main><h1>Sign in</h1>\(message)
            <section class="card"><form method="post" action="/ui/sign-in" class="settings">\(HTML.csrfField(csrf))
            <label>API token <input type="password" name="token" id="token" autocomplete="current-password" required></label>
            <button type="submit" class="primary" id="sign-in">Sign in</button></form>
            <p class="muted">Use one of the tokens the server was started with (--token or SLUICE_TOKEN).</p></section></main></body></html>
            """, status: status)
        if existing == nil {
            response.headers[values: .setCookie].append(Self.cookie(ConsoleSessions.csrfCookie, csrf, for: request))
        }
        return response
    }

    /// Checks the token and sets the session cookie.
    func signIn(_ request: Request) async throws -> Response {
        guard sessions.required else { return Self.redirect("/ui/") }
        let cookies = Self.cookies(request)
        let form = try await Self.form(request, limit: 64 * 1024)
        let token = form.last { $0.0 == ConsoleSessions.csrfField }?.1 ?? ""
        guard let cookie = cookies[ConsoleSessions.csrfCookie], BearerAuth<SluiceRequestContext>.constantTimeEqual(Array(cookie.utf8), Array(token.utf8)) else {
            return try await signInPage(request, error: "The form was stale; try again.", status: .forbidden)
        }
        guard let session = sessions.session(for: form.last { $0.0 == "token" }?.1 ?? "", now: clock.now()) else {
            return try await signInPage(request, error: "That token is not one of this server's tokens.", status: .unauthorized)
        }
        var response = Self.redirect("/ui/")
        response.headers[values: .setCookie].append(Self.cookie(ConsoleSessions.sessionCookie, session, for: request, maxAge: ConsoleSessions.lifetime))
        return response
    }

    /// `parameters` but the notice and its signature.
    static func withoutNotice(_ parameters: [(String, String)]) -> [(String, String)] {
        parameters.filter { $0.0 != ConsoleSessions.noticeParameter && $0.0 != ConsoleSessions.noticeMACParameter }
    }

    /// `path` with the query `parameters` but the notice, which a reload should not show again.
    static func withoutNotice(_ path: String, _ parameters: [(String, String)]) -> String {
        let kept = withoutNotice(parameters).map { TaskQuery.escape($0.0) + "=" + TaskQuery.escape($0.1) }
        return kept.isEmpty ? path : path + "?" + kept.joined(separator: "&")
    }

    /// A 303 to `location`.
    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }

    /// A 303 back to a console page, with a notice (signed) to show there.
    func redirect(_ path: String, query: String = "", notice: String) -> Response {
        let extra = sessions.noticeQuery(notice)
        return Self.redirect(path + "?" + (query.isEmpty ? extra : query + "&" + extra))
    }

    static func html(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                           ConsoleHeaders.contentSecurityPolicy: "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
                                           ConsoleHeaders.contentTypeOptions: "nosniff"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300", ConsoleHeaders.contentTypeOptions: "nosniff"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// The request's cookies by name.
    /// A console cookie: HttpOnly, SameSite=Strict, and Secure when the page came over HTTPS (a
    /// proxy in front says so with `X-Forwarded-Proto`, the browser with an https `Origin`), so the
    /// browser never sends it over plain HTTP.
    static func cookie(_ name: String, _ value: String, for request: Request, maxAge: Int64? = nil) -> String {
        let proto = request.headers[HTTPFields.Element.Name("X-Forwarded-Proto")!]?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces).lowercased()
        let secure = proto == "https" || request.headers[.origin]?.lowercased().hasPrefix("https://") == true
        return "\(name)=\(value); Path=/ui; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "") + (maxAge.map { "; Max-Age=\($0)" } ?? "")
    }

    static func cookies(_ request: Request) -> [String: String] {
        var cookies: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                cookies[pair[0].trimmingCharacters(in: .whitespaces)] = pair[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return cookies
    }

    /// A form body (`application/x-www-form-urlencoded`) as name–value pairs, in order.
    static func form(_ request: Request, limit: Int) async throws -> [(String, String)] {
        let buffer = try await request.body.collect(upTo: limit)
        return formPairs(String(buffer: buffer))
    }

    /// Form-encoded pairs, as a browser sends a form in a body or (GET) in the query: `+` is a
    /// space and `%2B` a plus. (The router's query parameters leave `+` as it is, so a search for
    /// two words found neither.)
    static func formPairs(_ text: String) -> [(String, String)] {
        text.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}

/// What a page renders: its title, the navigation section it belongs to, a part that stays (forms)
/// and the live part the refresh swaps.
struct ConsoleView: Sendable {
    var title: String
    var section: String
    var top = ""
    var live: String
    var refreshes = true
    var status: HTTPResponse.Status = .ok
}

/// Header names the console uses that HTTPTypes does not predefine.
enum ConsoleHeaders {
    static let contentSecurityPolicy = HTTPFields.Element.Name("Content-Security-Policy")!
    static let contentTypeOptions = HTTPFields.Element.Name("X-Content-Type-Options")!
    /// Sent by the live refresh: answer with the page's live part only.
    static let fragment = HTTPFields.Element.Name("X-Sluice-Fragment")!
}
