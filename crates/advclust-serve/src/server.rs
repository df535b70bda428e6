//! Running the server: on the caller's runtime ([`serve`]) or on its own runtime thread
//! ([`ServerHandle`]), until a shutdown future completes.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::CheckedServeConfig;
use crate::error::{Result, ServeError};
use crate::model::ServedModel;
use crate::routes::router;
use crate::state::{AppState, ServerStats};

/// How long a [`ServerHandle`]'s runtime waits for oracle calls still running at shutdown.
const BLOCKING_GRACE: Duration = Duration::from_secs(30);

/// Serves `model` on `listener` until `shutdown` completes, then stops accepting
/// connections, lets the requests in progress finish, and returns.
///
/// The model is validated first ([`ServeError::InvalidModel`]). Oracle calls run on the
/// runtime's blocking threads, one per free replica.
pub async fn serve(
    listener: TcpListener,
    model: ServedModel,
    config: CheckedServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = Arc::new(AppState::new(model, config)?);
    run(listener, state, shutdown).await
}

async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Io)
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM: the shutdown future of a command-line
/// server. Must be polled inside a tokio runtime (as [`serve`] and [`ServerHandle`] do).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// A server running on its own tokio runtime thread: what tests and the command line use.
///
/// Dropping the handle shuts the server down as [`ServerHandle::shutdown`] does.
///
/// ```
/// use advclust_core::{ClusterOracle, ImageBatch, Memberships, ParamGuard, Result};
/// use advclust_serve::{ServeConfig, ServedModel, ServerHandle};
///
/// struct Uniform;
/// impl ClusterOracle for Uniform {
///     fn num_clusters(&self) -> usize { 2 }
///     fn input_shape(&self) -> Option<[usize; 3]> { Some([1, 2, 2]) }
///     fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
///         Memberships::new(vec![0.5; 2 * batch.len()], batch.len(), 2)
///     }
/// }
/// let model = ServedModel::new("victim", Box::new(Uniform));
/// let config = ServeConfig::new().check().unwrap();
/// let server = ServerHandle::start("127.0.0.1:0", model, config).unwrap();
/// assert_ne!(server.addr().port(), 0);
/// assert!(server.url().starts_with("http://127.0.0.1:"));
/// server.shutdown().unwrap();
/// ```
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// Binds `addr` (port 0: any free port), and serves `model` there on a new runtime
    /// thread until [`ServerHandle::shutdown`].
    pub fn start(
        addr: impl ToSocketAddrs,
        model: ServedModel,
        config: CheckedServeConfig,
    ) -> Result<Self> {
        ServerHandle::start_until(addr, model, config, std::future::pending())
    }

    /// Like [`ServerHandle::start`], and also stops when `shutdown` completes (e.g.
    /// [`shutdown_signal`]; it is polled on the server's runtime).
    pub fn start_until(
        addr: impl ToSocketAddrs,
        model: ServedModel,
        config: CheckedServeConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads())
            .thread_name("advclust-serve")
            .enable_all()
            .build()
            .map_err(|e| ServeError::Runtime(format!("cannot start the runtime: {e}")))?;
        let state = Arc::new(AppState::new(model, config)?);
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|source| ServeError::Bind {
                addr: "the given address".into(),
                source,
            })?
            .collect();
        let bind_error = |source| ServeError::Bind {
            addr: format!("{addrs:?}"),
            source,
        };
        let std_listener = std::net::TcpListener::bind(addrs.as_slice()).map_err(bind_error)?;
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let local = std_listener.local_addr().map_err(bind_error)?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener).map_err(bind_error)?
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("advclust-serve {local}"))
            .spawn(move || {
                let until = async move {
                    tokio::select! {
                        _ = stopped => {},
                        _ = shutdown => {},
                    }
                };
                let result = runtime.block_on(run(listener, shared, until));
                runtime.shutdown_timeout(BLOCKING_GRACE);
                result
            })
            .map_err(|e| ServeError::Runtime(format!("cannot start the server thread: {e}")))?;
        Ok(ServerHandle {
            addr: local,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base URL of the routes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's counters now.
    pub fn stats(&self) -> ServerStats {
        self.state.stats()
    }

    /// Stops accepting connections, lets requests in progress finish, and joins the server
    /// thread; returns how the server ended.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    /// Waits until the server ends on its own (its shutdown future completed), without
    /// asking it to stop; returns its final counters.
    pub fn join(mut self) -> Result<ServerStats> {
        self.join_thread()?;
        Ok(self.state.stats())
    }

    fn stop_and_join(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            // An error means the server has already ended; joining reports how.
            let _ = stop.send(());
        }
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| ServeError::Runtime("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
