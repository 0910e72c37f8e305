//! An mKCP echo server: every stream gets back what it sends, until it half-closes.
//!
//! ```text
//! cargo run -p mkcp --example echo_server -- 127.0.0.1:4000
//! ```
//!
//! Optional second argument: a V2Ray `kcpSettings` JSON object, e.g.
//! `'{"header": {"type": "wechat-video"}, "seed": "s3cret"}'` (clients must match it).

use std::io;

use mkcp::{Config, KcpListener};
use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4000".to_string());
    let config = match args.next() {
        Some(json) => Config::from_kcp_settings_json(&json)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        None => Config::default(),
    };
    let listener = KcpListener::bind(&addr, config).await?;
    eprintln!("mKCP echo server on udp://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        eprintln!("{peer}: new session");
        tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(stream);
            let result = async {
                let n = tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await?; // half-close: the client reads end-of-stream
                io::Result::Ok(n)
            }
            .await;
            match result {
                Ok(n) => eprintln!("{peer}: echoed {n} bytes"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    }
}
