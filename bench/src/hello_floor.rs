//! The cold-start floor: the least a warp server can do to answer the Functions host's
//! readiness probe. Same warp (with `server`), same tokio runtime flavour and the same release
//! profile as `handler`, so the difference between the two is what the portal adds before its
//! first answer.

use std::net::SocketAddr;

use warp::Filter;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("FUNCTIONS_CUSTOMHANDLER_PORT names a port");
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("the port is free");
    let routes = warp::any().map(|| "ready");
    warp::serve(routes).incoming(listener).run().await;
}
