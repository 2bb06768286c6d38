//! Reading a connection's first bytes under a deadline, then handing them back to hyper.
//!
//! hyper-util's auto builder reads up to 24 bytes to tell HTTP/2's preface from HTTP/1.1 before either
//! protocol's own timers start, and has no deadline of its own: a client that connects and says nothing
//! would hold a connection slot forever. So the edge reads those bytes itself, under the header read
//! timeout, and replays them to the builder through [`Sniffed`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What an HTTP/2 prior-knowledge client sends first; the auto builder looks for it.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose first bytes were already read; reads return those bytes first, then the stream's.
#[derive(Debug)]
pub(crate) struct Sniffed<T> {
    prefix: [u8; H2_PREFACE.len()],
    len: usize,
    pos: usize,
    inner: T,
}

/// Reads until the bytes can no longer be HTTP/2's preface, the whole preface is in, or the client
/// closes. Callers put a deadline on it.
pub(crate) async fn read_preface<T: AsyncRead + Unpin>(mut inner: T) -> io::Result<Sniffed<T>> {
    let mut prefix = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    loop {
        let read = inner.read(&mut prefix[len..]).await?;
        if read == 0 {
            break; // The client closed; hyper will see the end of the stream after these bytes.
        }
        len += read;
        if len == prefix.len() || prefix[..len] != H2_PREFACE[..len] {
            break;
        }
    }
    Ok(Sniffed {
        prefix,
        len,
        pos: 0,
        inner,
    })
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.len {
            let this = &mut *self;
            let replay = &this.prefix[this.pos..this.len];
            let count = replay.len().min(buf.remaining());
            buf.put_slice(&replay[..count]);
            this.pos += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn sniff_then_read_all(chunks: &[&[u8]]) -> (usize, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64);
        for chunk in chunks {
            client.write_all(chunk).await.unwrap();
        }
        drop(client);
        let mut sniffed = read_preface(server).await.unwrap();
        let sniffed_len = sniffed.len;
        let mut all = Vec::new();
        sniffed.read_to_end(&mut all).await.unwrap();
        (sniffed_len, all)
    }

    #[tokio::test]
    async fn http1_stops_at_the_first_byte_that_is_not_the_preface() {
        let (sniffed, all) = sniff_then_read_all(&[b"GET / HTTP/1.1\r\n\r\n"]).await;
        assert!(sniffed >= 1 && sniffed < H2_PREFACE.len());
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn the_h2_preface_is_read_whole_even_byte_by_byte_and_replayed() {
        let mut chunks: Vec<&[u8]> = H2_PREFACE.chunks(1).collect();
        chunks.push(b"frames");
        let (sniffed, all) = sniff_then_read_all(&chunks).await;
        assert_eq!(sniffed, H2_PREFACE.len());
        assert_eq!(&all[..24], H2_PREFACE);
        assert_eq!(&all[24..], b"frames");
    }

    #[tokio::test]
    async fn a_client_that_closes_early_hands_over_what_it_sent() {
        let (sniffed, all) = sniff_then_read_all(&[b"PRI * HT"]).await;
        assert_eq!(sniffed, 8);
        assert_eq!(all, b"PRI * HT");
    }
}
