//! An mKCP echo client: sends a message (or standard input), half-closes, and prints
//! what comes back.
//!
//! ```text
//! cargo run -p mkcp --example echo_client -- 127.0.0.1:4000 "hello over mKCP"
//! echo hello | cargo run -p mkcp --example echo_client -- 127.0.0.1:4000
//! ```
//!
//! Optional third argument: a V2Ray `kcpSettings` JSON object matching the server's.

use std::io;
use std::time::Duration;

use mkcp::{Config, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_string());
    let message = args.next();
    let config = match args.next() {
        Some(json) => Config::from_kcp_settings_json(&json)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        None => Config::default(),
    };
    let data = match message {
        Some(m) => m.into_bytes(),
        None => {
            let mut v = Vec::new();
            tokio::io::stdin().read_to_end(&mut v).await?;
            v
        }
    };
    let stream = KcpStream::connect(&addr, config).await?;
    let (mut r, mut w) = stream.into_split();
    // Write and read at once, so a large input cannot deadlock against the echo.
    let writer = tokio::spawn(async move {
        w.write_all(&data).await?;
        w.shutdown().await?; // half-close: the server sees end-of-stream
        io::Result::Ok(w)
    });
    let mut echo = Vec::new();
    // mKCP has no handshake: a server that is not there shows as a timeout.
    tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut echo))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no complete echo within 60 s"))??;
    let w = writer.await.map_err(io::Error::other)??;
    let stats = w.stats();
    tokio::io::stdout().write_all(&echo).await?;
    tokio::io::stdout().flush().await?;
    // Both directions have ended; close the V2Ray way (everything was acknowledged).
    let stream = r.reunite(w).map_err(io::Error::other)?;
    stream.close().await?;
    eprintln!(
        "\n{} bytes echoed; srtt {} ms, {} datagrams sent",
        echo.len(),
        stats.srtt_ms,
        stats.datagrams_sent
    );
    Ok(())
}
