//! A response body that holds something until it is dropped: the request's
//! place in its connection's [`Activity`](super::timeouts::Activity), or a
//! per-address stream slot.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use bytes::Bytes;

/// `inner`, holding `guard` for as long as the body lives.
pub struct GuardedBody<G> {
    inner: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> GuardedBody<G> {
    /// `inner` as an axum [`Body`] that drops `guard` with it.
    pub fn wrap(inner: Body, guard: G) -> Body {
        Body::new(GuardedBody {
            inner,
            _guard: guard,
        })
    }
}

impl<G: Unpin> HttpBody for GuardedBody<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
