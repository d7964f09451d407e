//! The answers the proxy gives itself instead of a backend: nginx's error pages (so clients
//! and tests written against ingress-nginx see the same statuses and much the same bodies), the
//! default backend's 404, HTTPS redirects and CORS preflights.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Response, StatusCode};

use super::body::ResponseBody;

/// The body of the default backend (no rule for the host and path, no `defaultBackend`).
pub const DEFAULT_BACKEND_BODY: &str = "default backend - 404\n";

const HTML: HeaderValue = HeaderValue::from_static("text/html");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// nginx's page for `status`.
fn page(status: StatusCode) -> &'static str {
    match status.as_u16() {
        308 => "<html>\r\n<head><title>308 Permanent Redirect</title></head>\r\n<body>\r\n<center><h1>308 Permanent Redirect</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        400 => "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        403 => "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        408 => "<html>\r\n<head><title>408 Request Time-out</title></head>\r\n<body>\r\n<center><h1>408 Request Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        413 => "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        502 => "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        503 => "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        504 => "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        _ => "<html>\r\n<body>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    }
}

/// An error answer with nginx's page.
pub fn error(status: StatusCode) -> Response<ResponseBody> {
    let body = page(status);
    let mut resp = Response::new(ResponseBody::text(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HTML);
    resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

/// The default backend's 404.
pub fn not_found() -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::text(DEFAULT_BACKEND_BODY));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(CONTENT_TYPE, TEXT);
    resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(DEFAULT_BACKEND_BODY.len()));
    resp
}

/// A 308 to `location`.
pub fn redirect(location: HeaderValue) -> Response<ResponseBody> {
    let mut resp = error(StatusCode::PERMANENT_REDIRECT);
    resp.headers_mut().insert(LOCATION, location);
    resp
}

/// An empty answer (CORS preflight).
pub fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = status;
    resp
}
