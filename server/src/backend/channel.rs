//! The channel back-end: a dedicated server thread fed by crossbeam channels.

use super::core::{Monitor, ServerCore, StopReason};
use super::dispatch::{Dispatcher, Reply, Request};
use super::{FetchReply, PushReply, ServerClient};
use crate::rule::UpdateRule;
use crossbeam::channel::{bounded, Receiver, Sender};
use std::thread::JoinHandle;

/// A server thread that owns the core and applies every update itself:
/// workers never contend for a lock, but each fetch and push is a round
/// trip through two channels (and a thread wake-up when the server idles).
#[derive(Debug)]
pub struct ChannelServer<R: UpdateRule + 'static, M: Monitor + 'static> {
    requests: Sender<Request>,
    thread: JoinHandle<ServerCore<R, M>>,
}

impl<R: UpdateRule + 'static, M: Monitor + 'static> ChannelServer<R, M> {
    /// Starts the server thread and returns it with one client per worker.
    pub fn spawn(core: ServerCore<R, M>) -> (Self, Vec<ChannelClient>) {
        let workers = core.workers();
        let dim = core.state().params().len();
        // One request in flight per worker, plus a halt: the bounded
        // (array) channel never blocks and never allocates per message.
        let (requests, inbox) = bounded::<Request>(2 * workers + 2);
        let (reply_tx, clients): (Vec<_>, Vec<_>) = (0..workers)
            .map(|worker| {
                let (tx, rx) = bounded(1);
                let client = ChannelClient {
                    worker,
                    requests: requests.clone(),
                    replies: rx,
                    params: Some(vec![0.0; dim]),
                    gradient: Some(vec![0.0; dim]),
                    version: 0,
                    left: false,
                };
                (tx, client)
            })
            .unzip();
        let thread = std::thread::Builder::new()
            .name("psim-server".into())
            .spawn(move || serve(core, inbox, reply_tx))
            .expect("spawning the server thread");
        (Self { requests, thread }, clients)
    }

    /// A handle that can stop the run from any thread.
    pub fn halter(&self) -> impl Fn(StopReason) + Send + Sync + Clone {
        let tx = self.requests.clone();
        move |reason| {
            let _ = tx.send(Request::Halt(reason));
        }
    }

    /// Waits for every client to be dropped and returns the core.
    pub fn join(self) -> ServerCore<R, M> {
        drop(self.requests);
        match self.thread.join() {
            Ok(core) => core,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn serve<R: UpdateRule, M: Monitor>(
    core: ServerCore<R, M>,
    inbox: Receiver<Request>,
    replies: Vec<Sender<Reply>>,
) -> ServerCore<R, M> {
    let _span = tracing::debug_span!("server_thread").entered();
    let mut dispatcher = Dispatcher::new(core);
    let mut send = |worker: usize, reply: Reply| {
        // A client gone mid-request (its thread panicked) is not an error.
        let _ = replies[worker].try_send(reply);
    };
    // Ends when every sender (clients and the server handle) is dropped.
    while let Ok(req) = inbox.recv() {
        dispatcher.handle(req, &mut send);
    }
    dispatcher.into_core()
}

/// A worker's connection to a [`ChannelServer`].
#[derive(Debug)]
pub struct ChannelClient {
    worker: usize,
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    params: Option<Vec<f64>>,
    gradient: Option<Vec<f64>>,
    version: u64,
    left: bool,
}

impl ChannelClient {
    fn round_trip(&mut self, req: Request) -> Option<Reply> {
        self.requests.send(req).ok()?;
        self.replies.recv().ok()
    }
}

const GONE: &str = "the server thread answers every request until the clients are dropped";

impl ServerClient for ChannelClient {
    fn fetch(&mut self) -> FetchReply {
        let buf = self.params.take().expect("buffer home");
        match self.round_trip(Request::Fetch {
            worker: self.worker,
            buf,
        }) {
            Some(Reply::Fetched { buf, reply }) => {
                self.params = Some(buf);
                if !reply.stopped {
                    self.version = reply.version;
                }
                reply
            }
            _ => panic!("{GONE}"),
        }
    }

    fn params(&self) -> &[f64] {
        self.params.as_deref().expect("buffer home")
    }

    fn push(&mut self, gradient: &[f64]) -> PushReply {
        let mut g = self.gradient.take().expect("buffer home");
        g.copy_from_slice(gradient);
        let params = self.params.take().expect("buffer home");
        match self.round_trip(Request::Push {
            worker: self.worker,
            gradient: g,
            params,
            version: self.version,
        }) {
            Some(Reply::Pushed {
                gradient,
                params,
                reply,
            }) => {
                self.gradient = Some(gradient);
                self.params = Some(params);
                reply
            }
            _ => panic!("{GONE}"),
        }
    }

    fn push_fetch(&mut self, gradient: &[f64]) -> (PushReply, FetchReply) {
        let mut g = self.gradient.take().expect("buffer home");
        g.copy_from_slice(gradient);
        let params = self.params.take().expect("buffer home");
        match self.round_trip(Request::PushFetch {
            worker: self.worker,
            gradient: g,
            params,
            version: self.version,
            pushed: None,
        }) {
            Some(Reply::PushedFetched {
                gradient,
                params,
                push,
                fetch,
            }) => {
                self.gradient = Some(gradient);
                self.params = Some(params);
                if !fetch.stopped {
                    self.version = fetch.version;
                }
                (push, fetch)
            }
            _ => panic!("{GONE}"),
        }
    }

    fn leave(&mut self) {
        if !self.left {
            self.left = true;
            let _ = self.requests.send(Request::Leave {
                worker: self.worker,
            });
        }
    }
}
