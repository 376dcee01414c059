//! The order path requests of one session keep: those that only look run side by side, one that changes something waits for every path request before it, and those after it wait for it.
//!
//! The SFTP drafts let a server answer in any order but have it act as if the
//! requests touching the same file ran one at a time. Path requests are few and
//! cheap beside reads and writes, so rather than tracking which paths overlap,
//! a change is a barrier among all path requests: a client that sends REMOVE
//! then STAT without waiting sees the file gone, as with one request at a time.
//! Handle requests are ordered per handle ([`super::handles`]), not here.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{mpsc, oneshot};

/// Hands out each path request's place, in the order the requests arrived.
pub struct PathOrder {
    /// Done when the latest change dispatched is done.
    last_change: Shared<BoxFuture<'static, ()>>,
    /// Held (cloned) by each look dispatched since that change; closes when they are all done.
    looks: mpsc::Sender<()>,
    looks_done: mpsc::Receiver<()>,
}

/// The place of a request that only looks: after the latest change before it.
pub struct LookTurn {
    after: Shared<BoxFuture<'static, ()>>,
    _running: mpsc::Sender<()>,
}

/// The place of a request that changes something: after every path request before it.
pub struct ChangeTurn {
    after_change: Shared<BoxFuture<'static, ()>>,
    looks_done: mpsc::Receiver<()>,
    _done: oneshot::Sender<()>,
}

impl Default for PathOrder {
    fn default() -> Self {
        let (looks, looks_done) = mpsc::channel(1);
        PathOrder {
            last_change: futures::future::ready(()).boxed().shared(),
            looks,
            looks_done,
        }
    }
}

impl PathOrder {
    /// The turn of the next request, which only looks.
    pub fn look(&mut self) -> LookTurn {
        LookTurn {
            after: self.last_change.clone(),
            _running: self.looks.clone(),
        }
    }

    /// The turn of the next request, which changes something.
    pub fn change(&mut self) -> ChangeTurn {
        let (looks, looks_done) = mpsc::channel(1);
        // This request's own sender is dropped with the old one, so `looks_done` closes once the
        // looks before it are done.
        drop(std::mem::replace(&mut self.looks, looks));
        let looks_done = std::mem::replace(&mut self.looks_done, looks_done);
        let (done, finished) = oneshot::channel::<()>();
        let after_change = std::mem::replace(&mut self.last_change, finished.map(|_| ()).boxed().shared());
        ChangeTurn {
            after_change,
            looks_done,
            _done: done,
        }
    }
}

impl LookTurn {
    /// Waits for the turn; keep the result until the request is done.
    pub async fn wait(self) -> LookTurn {
        self.after.clone().await;
        self
    }
}

impl ChangeTurn {
    /// Waits for the turn; keep the result until the request is done (dropping it lets the
    /// requests after it go).
    pub async fn wait(mut self) -> ChangeTurn {
        self.after_change.clone().await;
        while self.looks_done.recv().await.is_some() {}
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Polls once: the turn if it has come.
    fn poll<T>(future: &mut Pin<Box<impl Future<Output = T>>>) -> Option<T> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(turn) => Some(turn),
            Poll::Pending => None,
        }
    }

    #[test]
    fn looks_run_together_and_a_change_waits_for_them_and_the_next_looks_for_it() {
        let mut order = PathOrder::default();
        let mut look1 = Box::pin(order.look().wait());
        let mut look2 = Box::pin(order.look().wait());
        let mut change = Box::pin(order.change().wait());
        let mut look3 = Box::pin(order.look().wait());
        let mut change2 = Box::pin(order.change().wait());
        let (look1, look2) = (
            poll(&mut look1).expect("looks go at once"),
            poll(&mut look2).expect("both"),
        );
        assert!(poll(&mut change).is_none(), "the change waits for the looks before it");
        assert!(poll(&mut look3).is_none(), "a look waits for the change before it");
        drop(look1);
        assert!(poll(&mut change).is_none());
        drop(look2);
        let change = poll(&mut change).expect("the looks are done");
        assert!(poll(&mut look3).is_none() && poll(&mut change2).is_none());
        drop(change);
        let look3 = poll(&mut look3).expect("the change is done");
        assert!(
            poll(&mut change2).is_none(),
            "the second change waits for the look between"
        );
        drop(look3);
        assert!(poll(&mut change2).is_some());
    }
}
