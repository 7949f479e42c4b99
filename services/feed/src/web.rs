//! The browser's door to the feed: gRPC-Web (tonic-web's translation; HTTP/1.1 or HTTP/2) on a port
//! of its own, beside the Messages page's static files from the same origin. The FeedService behind
//! it is the native one, interceptor and all, so tokens, tenant scoping and error mapping are one.

use std::sync::Arc;

use axum::extract::Request;
use messaging_platform::Shutdown;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_web::GrpcWebLayer;

use crate::page::Page;

/// Serves `routes` as gRPC-Web and everything else from `page` until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    page: Arc<Page>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    // The translation wraps the gRPC routes only: it refuses any plain HTTP/1.1 request, and the
    // page's files are exactly that.
    let router = routes.into_axum_router().route_layer(GrpcWebLayer::new()).fallback(move |request: Request| {
        let page = page.clone();
        async move { page.respond(request.method(), request.uri().path(), request.headers()) }
    });
    tracing::info!(listen = %listener.local_addr()?, "gRPC-Web and the Messages page listening");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .accept_http1(true)
        .trace_fn(|request| {
            let span = tracing::info_span!("grpc-web", otel.kind = "server", http.path = %request.uri().path());
            messaging_platform::bus::trace::adopt_http_parent(&span, request.headers());
            span
        })
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await?;
    Ok(())
}
