//! The task back-end: the server loop as a tokio task fed by tokio mpsc,
//! for workers that are tokio tasks (a blocking lock would stall the
//! runtime's threads).

use super::core::{Monitor, ServerCore, StopReason};
use super::dispatch::{Dispatcher, Reply, Request};
use super::{FetchReply, PushReply};
use crate::rule::UpdateRule;
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tokio::task::JoinHandle;

/// A tokio task that owns the core, like [`super::ChannelServer`] does with
/// a thread.
#[derive(Debug)]
pub struct TaskServer<R: UpdateRule + 'static, M: Monitor + 'static> {
    requests: Sender<Request>,
    task: JoinHandle<ServerCore<R, M>>,
}

impl<R: UpdateRule + 'static, M: Monitor + 'static> TaskServer<R, M> {
    /// Spawns the server task on the current runtime and returns it with one
    /// client per worker.
    pub fn spawn(core: ServerCore<R, M>) -> (Self, Vec<TaskClient>) {
        let workers = core.workers();
        let dim = core.state().params().len();
        // One request in flight per worker, plus halts: `try_send` of a
        // leave or a halt from synchronous code always finds room.
        let (requests, inbox) = channel::<Request>(2 * workers + 2);
        let (reply_tx, clients): (Vec<_>, Vec<_>) = (0..workers)
            .map(|worker| {
                let (tx, rx) = channel(1);
                let client = TaskClient {
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
        let task = tokio::spawn(serve(core, inbox, reply_tx));
        (Self { requests, task }, clients)
    }

    /// A handle that can stop the run from any thread or task.
    pub fn halter(&self) -> impl Fn(StopReason) + Send + Sync + Clone {
        let tx = self.requests.clone();
        move |reason| {
            let _ = tx.try_send(Request::Halt(reason));
        }
    }

    /// Waits for every client to be dropped and returns the core.
    pub async fn join(self) -> ServerCore<R, M> {
        drop(self.requests);
        match self.task.await {
            Ok(core) => core,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

async fn serve<R: UpdateRule, M: Monitor>(
    core: ServerCore<R, M>,
    mut inbox: Receiver<Request>,
    replies: Vec<Sender<Reply>>,
) -> ServerCore<R, M> {
    let mut dispatcher = Dispatcher::new(core);
    let mut send = |worker: usize, reply: Reply| {
        let _ = replies[worker].try_send(reply);
    };
    while let Some(req) = inbox.recv().await {
        dispatcher.handle(req, &mut send);
        // Drain what is already queued before yielding to the runtime.
        while let Ok(req) = inbox.try_recv() {
            dispatcher.handle(req, &mut send);
        }
    }
    dispatcher.into_core()
}

/// A worker task's connection to a [`TaskServer`].
#[derive(Debug)]
pub struct TaskClient {
    worker: usize,
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    params: Option<Vec<f64>>,
    gradient: Option<Vec<f64>>,
    version: u64,
    left: bool,
}

const GONE: &str = "the server task answers every request until the clients are dropped";

impl TaskClient {
    async fn round_trip(&mut self, req: Request) -> Option<Reply> {
        self.requests.send(req).await.ok()?;
        self.replies.recv().await
    }

    /// Fetches the current parameters (waiting as the consistency model says).
    pub async fn fetch(&mut self) -> FetchReply {
        let buf = self.params.take().expect("buffer home");
        match self
            .round_trip(Request::Fetch {
                worker: self.worker,
                buf,
            })
            .await
        {
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

    /// The task's copy of the parameters, as of the last fetch.
    pub fn params(&self) -> &[f64] {
        self.params.as_deref().expect("buffer home")
    }

    /// Pushes `gradient`, computed on [`TaskClient::params`].
    pub async fn push(&mut self, gradient: &[f64]) -> PushReply {
        let mut g = self.gradient.take().expect("buffer home");
        g.copy_from_slice(gradient);
        let params = self.params.take().expect("buffer home");
        match self
            .round_trip(Request::Push {
                worker: self.worker,
                gradient: g,
                params,
                version: self.version,
            })
            .await
        {
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

    /// Pushes `gradient` and fetches the parameters after it, in one round trip.
    pub async fn push_fetch(&mut self, gradient: &[f64]) -> (PushReply, FetchReply) {
        let mut g = self.gradient.take().expect("buffer home");
        g.copy_from_slice(gradient);
        let params = self.params.take().expect("buffer home");
        match self
            .round_trip(Request::PushFetch {
                worker: self.worker,
                gradient: g,
                params,
                version: self.version,
                pushed: None,
            })
            .await
        {
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

    /// Leaves the run; callable from synchronous code (a drop guard).
    pub fn leave(&mut self) {
        if !self.left {
            self.left = true;
            let _ = self.requests.try_send(Request::Leave {
                worker: self.worker,
            });
        }
    }
}
