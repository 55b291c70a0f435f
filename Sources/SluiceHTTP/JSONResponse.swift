import Hummingbird
import SluiceCore

/// A JSON response.
func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    jsonResponse(bytes: value.jsonBytes(), status: status, headers: headers)
}

/// A JSON response from JSON text already written.
func jsonResponse(bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    var headers = headers
    headers[.contentType] = "application/json"
    var bytes = bytes
    bytes.append(UInt8(ascii: "\n"))
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
}
