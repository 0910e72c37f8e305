use mkcp::{Config, KcpListener, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // A server: accepts mKCP sessions on a UDP port and echoes each one back.
    let listener = KcpListener::bind("127.0.0.1:0", Config::default()).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _peer)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await // our end of stream, once the client's has arrived
            });
        }
    });

    // A client: one mKCP conversation over a UDP socket of its own.
    let mut stream = KcpStream::connect(addr, Config::default()).await?;
    stream.write_all(b"hello over mKCP").await?;
    stream.shutdown().await?; // half-close: nothing more from us
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    println!("{reply} (srtt {} ms)", stream.stats().srtt_ms);
    Ok(())
}
