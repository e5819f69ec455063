//! The one body type every layer passes along, and helpers to buffer a body for replay.

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};

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

/// Why a body could not be buffered for replay; the body is handed back intact.
pub enum NotBuffered {
    /// The body is longer than the bound.
    TooLarge(Body),
    /// Reading the body failed (the client went away).
    Failed(BoxError),
}

/// Reads `body` into memory if it holds at most `max` bytes. A longer body is given back
/// whole: the bytes read so far are put in front of the rest of the stream.
pub async fn buffer(mut body: Body, max: usize) -> Result<Replay, NotBuffered> {
    let mut frames = Vec::new();
    let mut len = 0usize;
    if body.is_end_stream() {
        return Ok(Replay { frames });
    }
    if body.size_hint().lower() as usize > max {
        return Err(NotBuffered::TooLarge(body));
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(NotBuffered::Failed)?;
        match frame.into_data() {
            Ok(data) => {
                len += data.len();
                frames.push(ReplayFrame::Data(data));
                if len > max {
                    return Err(NotBuffered::TooLarge(prepend(frames, body)));
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    frames.push(ReplayFrame::Trailers(trailers));
                }
            }
        }
    }
    Ok(Replay { frames })
}

fn prepend(read: Vec<ReplayFrame>, rest: Body) -> Body {
    let head = stream::iter(read.into_iter().map(|f| {
        Ok::<_, BoxError>(match f {
            ReplayFrame::Data(d) => Frame::data(d),
            ReplayFrame::Trailers(t) => Frame::trailers(t),
        })
    }));
    boxed(StreamBody::new(head.chain(BodyStream::new(rest))))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(body: Body) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_small_body_is_buffered_and_replayed_twice() {
        let replay = buffer(full("hello"), 16).await.ok().unwrap();
        assert_eq!(collect(replay.body()).await, "hello");
        assert_eq!(collect(replay.body()).await, "hello");
    }

    #[tokio::test]
    async fn a_large_streamed_body_is_handed_back_whole() {
        let chunks = (0..10).map(|i| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![i; 10]))));
        let body = boxed(StreamBody::new(stream::iter(chunks)));
        let Err(NotBuffered::TooLarge(back)) = buffer(body, 25).await else {
            panic!("100 bytes must not fit in 25");
        };
        let all = collect(back).await;
        assert_eq!(all.len(), 100);
        assert_eq!(&all[..10], &[0; 10]);
        assert_eq!(&all[90..], &[9; 10]);
    }
}
