//! The one body type every layer passes along, and bodies that keep a copy while they are
//! sent: [`Recording`] for retries, [`Copying`] for mirrors.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tokio::sync::mpsc;

/// Errors a body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request or response body, boxed once at the edge.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
/// A request as every layer sees it.
pub type Req = http::Request<Body>;
/// A response as every layer returns it.
pub type Rsp = http::Response<Body>;

/// Boxes any body into [`Body`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

pub fn empty() -> Body {
    boxed(Empty::<Bytes>::new())
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    boxed(Full::new(bytes.into()))
}

/// A body read into memory, frame by frame (data and trailers), so it can be sent again.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    frames: Vec<ReplayFrame>,
}

#[derive(Clone, Debug)]
enum ReplayFrame {
    Data(Bytes),
    Trailers(http::HeaderMap),
}

impl Replay {
    /// A fresh body with the same frames.
    pub fn body(&self) -> Body {
        if self.frames.is_empty() {
            return empty();
        }
        let frames = self.frames.clone().into_iter().map(|f| {
            Ok::<_, BoxError>(match f {
                ReplayFrame::Data(d) => Frame::data(d),
                ReplayFrame::Trailers(t) => Frame::trailers(t),
            })
        });
        boxed(StreamBody::new(stream::iter(frames)))
    }
}

/// A request body being sent while a copy of it is kept (up to a bound) so that the
/// request can be sent again: retries never hold back a streaming request.
pub struct Recording {
    inner: Body,
    capture: Arc<Mutex<Capture>>,
}

/// What a [`Recording`] has kept so far.
#[derive(Debug)]
pub struct Capture {
    frames: Vec<ReplayFrame>,
    len: usize,
    max: usize,
    overflowed: bool,
    complete: bool,
}

/// Why a recorded body cannot be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoReplay {
    /// Longer than the bound.
    TooLarge,
    /// Not fully sent yet (a streaming request, or the answer came before the body ended).
    Streaming,
}

impl NoReplay {
    pub fn as_str(self) -> &'static str {
        match self {
            NoReplay::TooLarge => "body_too_large",
            NoReplay::Streaming => "streaming_body",
        }
    }
}

impl Recording {
    /// Wraps `body`, keeping up to `max` bytes of it; the handle tells later whether it can
    /// be replayed.
    pub fn start(body: Body, max: usize) -> (Body, Arc<Mutex<Capture>>) {
        let capture = Arc::new(Mutex::new(Capture {
            frames: Vec::new(),
            len: 0,
            max,
            overflowed: false,
            complete: body.is_end_stream(),
        }));
        let this = Recording {
            inner: body,
            capture: capture.clone(),
        };
        (boxed(this), capture)
    }
}

impl Capture {
    /// The whole body for another attempt, if it was kept and fully sent.
    pub fn replay(&self) -> Result<Replay, NoReplay> {
        if self.overflowed {
            Err(NoReplay::TooLarge)
        } else if !self.complete {
            Err(NoReplay::Streaming)
        } else {
            Ok(Replay {
                frames: self.frames.clone(),
            })
        }
    }
}

impl http_body::Body for Recording {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let end = self.inner.is_end_stream();
        let mut capture = self.capture.lock().expect("capture lock");
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    capture.len += data.len();
                    if capture.len > capture.max {
                        capture.overflowed = true;
                        capture.frames.clear();
                    } else if !capture.overflowed {
                        capture.frames.push(ReplayFrame::Data(data.clone()));
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    capture.frames.push(ReplayFrame::Trailers(trailers.clone()));
                }
                capture.complete = end;
            }
            Poll::Ready(None) => capture.complete = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        drop(capture);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body being sent while each frame is also handed to a copy (a mirrored
/// request), up to a bound; past it, the copy fails and the original goes on untouched.
pub struct Copying {
    inner: Body,
    copy: Option<mpsc::UnboundedSender<Result<Frame<Bytes>, BoxError>>>,
    sent: usize,
    max: usize,
}

impl Copying {
    /// The original body (to send on) and the copy's body.
    pub fn split(body: Body, max: usize) -> (Body, Body) {
        let (tx, rx) = mpsc::unbounded_channel();
        let copy = if body.is_end_stream() {
            empty()
        } else {
            boxed(ChannelBody { rx })
        };
        let original = Copying {
            copy: (!body.is_end_stream()).then_some(tx),
            inner: body,
            sent: 0,
            max,
        };
        (boxed(original), copy)
    }
}

impl http_body::Body for Copying {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let end = self.inner.is_end_stream();
        let this = &mut *self;
        if let (Poll::Ready(Some(Ok(frame))), Some(tx)) = (&polled, &this.copy) {
            let copied = if let Some(data) = frame.data_ref() {
                this.sent += data.len();
                (this.sent <= this.max).then(|| Frame::data(data.clone()))
            } else {
                frame.trailers_ref().map(|t| Frame::trailers(t.clone()))
            };
            match copied {
                Some(f) => {
                    let _ = tx.send(Ok(f));
                }
                None => {
                    let _ = tx.send(Err("the body is too large to mirror".into()));
                    this.copy = None;
                }
            }
        }
        if end || matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.copy = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body fed by a channel; ends when the sender is dropped.
struct ChannelBody {
    rx: mpsc::UnboundedReceiver<Result<Frame<Bytes>, BoxError>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(body: Body) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    fn chunks(n: u8, size: usize) -> Body {
        let frames =
            (0..n).map(move |i| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![i; size]))));
        boxed(StreamBody::new(stream::iter(frames)))
    }

    #[tokio::test]
    async fn a_body_sent_in_full_can_be_replayed_twice() {
        let (body, capture) = Recording::start(chunks(3, 4), 64);
        assert_eq!(collect(body).await.len(), 12);
        let replay = capture.lock().unwrap().replay().unwrap();
        assert_eq!(collect(replay.body()).await, collect(chunks(3, 4)).await);
        assert_eq!(collect(replay.body()).await.len(), 12);
    }

    #[tokio::test]
    async fn a_body_over_the_bound_is_sent_whole_but_not_replayed() {
        let (body, capture) = Recording::start(chunks(10, 10), 25);
        assert_eq!(collect(body).await.len(), 100);
        assert_eq!(
            capture.lock().unwrap().replay().unwrap_err(),
            NoReplay::TooLarge
        );
    }

    #[tokio::test]
    async fn a_body_not_yet_sent_is_not_replayed() {
        let (_body, capture) = Recording::start(chunks(1, 1), 25);
        assert_eq!(
            capture.lock().unwrap().replay().unwrap_err(),
            NoReplay::Streaming
        );
        let (_empty, capture) = Recording::start(empty(), 25);
        assert!(capture.lock().unwrap().replay().is_ok(), "nothing to send");
    }

    #[tokio::test]
    async fn a_copy_gets_every_frame_as_the_original_is_sent() {
        let (original, copy) = Copying::split(chunks(3, 4), 64);
        assert_eq!(collect(original).await.len(), 12);
        assert_eq!(collect(copy).await, collect(chunks(3, 4)).await);
    }

    #[tokio::test]
    async fn a_copy_fails_past_the_bound_and_the_original_is_untouched() {
        let (original, copy) = Copying::split(chunks(10, 10), 25);
        assert_eq!(collect(original).await.len(), 100);
        assert!(copy.collect().await.is_err());
    }
}
