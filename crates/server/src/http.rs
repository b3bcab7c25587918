//! Serving a hyper service on a listener until shutdown, then letting in-flight requests finish.

use std::error::Error as StdError;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long in-flight requests get after shutdown is asked for.
const DRAIN: Duration = Duration::from_secs(60);

type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves connections, each with the service `make` builds for its peer address.
pub async fn serve<M, S, B>(
    name: &'static str,
    listener: TcpListener,
    make: M,
    mut stop: watch::Receiver<bool>,
) where
    M: Fn(std::net::SocketAddr) -> S,
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(%name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small responses on a kept-alive connection must not wait for a delayed ACK.
                let _ = stream.set_nodelay(true);
                let conn = builder.serve_connection(TokioIo::new(stream), make(peer)).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%name, %peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(%name, "all connections finished"),
        () = tokio::time::sleep(DRAIN) => tracing::warn!(%name, "connections still open after the drain period"),
    }
}
