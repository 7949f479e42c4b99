//! The Messages page's static files, served from the gRPC-Web port's origin: read once at start-up
//! from the built page's directory into memory and answered by exact path, so no request ever
//! touches the file system (nothing to traverse) and every answer carries the same strict headers.

use std::collections::HashMap;
use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The largest file the page may ship; anything bigger is a build mistake, refused at start-up.
const MAX_FILE_BYTES: u64 = 8 << 20;

/// Where the page may load from and talk to: itself only. No inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct File {
    body: Bytes,
    content_type: &'static str,
    etag: HeaderValue,
}

/// The page's files by URL path (`/` is `index.html`).
#[derive(Default)]
pub struct Page {
    files: HashMap<String, File>,
}

impl Page {
    /// Every file under `root`; an absent `root` gives an empty page (gRPC-Web still answers).
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let mut page = Self::default();
        if root.is_dir() {
            page.add_dir(root, "")?;
        }
        Ok(page)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn add_dir(&mut self, dir: &Path, prefix: &str) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.add_dir(&entry.path(), &format!("{prefix}/{name}"))?;
            } else if kind.is_file() {
                let size = entry.metadata()?.len();
                anyhow::ensure!(size <= MAX_FILE_BYTES, "{} is {size} bytes; the page's files stay small", name);
                let body = Bytes::from(std::fs::read(entry.path())?);
                let etag = format!("\"{}\"", hex_prefix(&Sha256::digest(&body)));
                let file = File { body, content_type: content_type(&name), etag: HeaderValue::from_str(&etag)? };
                self.files.insert(format!("{prefix}/{name}"), file);
            }
        }
        Ok(())
    }

    /// The answer to a request that no gRPC route took.
    pub fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "the page answers GET and HEAD only\n");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let path = if path == "/" { "/index.html" } else { path };
        let Some(file) = self.files.get(path) else {
            return if self.files.is_empty() {
                plain(StatusCode::NOT_FOUND, "the Messages page is not built here: run `make web`\n")
            } else {
                plain(StatusCode::NOT_FOUND, "not found\n")
            };
        };
        let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag == file.etag);
        let mut response = match (fresh, method == Method::HEAD) {
            (false, false) => Response::new(Body::from(file.body.clone())),
            _ => Response::new(Body::empty()),
        };
        if fresh {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
        }
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        if !fresh {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.body.len()));
        }
        h.insert(header::ETAG, file.etag.clone());
        // Revalidated on every load: a deploy shows at the next reload, and an unchanged file
        // costs a 304.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        secure(h);
        response
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    secure(response.headers_mut());
    response
}

fn secure(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "map") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> (tempdir::Dir, Page) {
        let dir = tempdir::Dir::new();
        std::fs::write(dir.0.join("index.html"), "<!doctype html><title>Messages</title>").expect("write");
        std::fs::create_dir(dir.0.join("assets")).expect("mkdir");
        std::fs::write(dir.0.join("assets/app.js"), "console.log(1)").expect("write");
        let page = Page::load(&dir.0).expect("load");
        (dir, page)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let path = std::env::temp_dir().join(format!("feed-page-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&path).expect("temp dir");
                Self(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn serves_files_by_exact_path_with_strict_headers() {
        let (_dir, page) = page();
        let index = page.respond(&Method::GET, "/", &HeaderMap::new());
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            index.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("default-src 'self'")
        );
        assert_eq!(index.headers()[header::REFERRER_POLICY], "no-referrer");
        let script = page.respond(&Method::GET, "/assets/app.js", &HeaderMap::new());
        assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        for path in ["/assets/../index.html", "/../Cargo.toml", "/assets", "/missing.js", "//etc/passwd"] {
            assert_eq!(page.respond(&Method::GET, path, &HeaderMap::new()).status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn an_unchanged_file_is_not_modified_and_writes_are_refused() {
        let (_dir, page) = page();
        let first = page.respond(&Method::GET, "/", &HeaderMap::new());
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, first.headers()[header::ETAG].clone());
        assert_eq!(page.respond(&Method::GET, "/", &headers).status(), StatusCode::NOT_MODIFIED);
        let post = page.respond(&Method::POST, "/", &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
    }

    #[test]
    fn an_unbuilt_page_says_how_to_build_it() {
        let page = Page::load(Path::new("/nonexistent/page")).expect("load");
        assert!(page.is_empty());
        assert_eq!(page.respond(&Method::GET, "/", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
