import Hummingbird
import SluiceCore

/// Turns every error into the API's JSON shape: routes not found, bodies too large, anything thrown.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as SluiceError {
            throw APIError(error)
        } catch let error as any HTTPResponseError {
            // Hummingbird's own errors: no route (404), body over the limit (413), and the like.
            switch error.status {
            case .notFound: throw APIError(.notFound, "not_found", "no route for \(request.method) \(request.uri.path)")
            case .contentTooLarge: throw APIError(.contentTooLarge, "body_too_large", "the request body is over the limit")
            default: throw APIError(error.status, "http_error", error.status.reasonPhrase)
            }
        } catch {
            context.logger.error("request failed: \(error)")
            throw APIError(.internalServerError, "internal", "internal error; see the server log")
        }
    }
}
