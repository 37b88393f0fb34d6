//! Starting and stopping xray-local: binds every listener, puts the state
//! behind the surfaces and runs them until shut down.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::state::{App, sampling};
use crate::surfaces::{otlp_http, sampling_api, udp, viewer, xray_api};

/// A listener that could not be started.
#[derive(Debug)]
pub struct StartError {
    /// What was being set up.
    pub what: String,
    /// The underlying error.
    pub source: io::Error,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    let what = what.into();
    move |source| StartError { what, source }
}

/// A running xray-local: UDP intake, sampling API, X-Ray API and viewer.
#[derive(Debug)]
pub struct Server {
    app: Arc<App>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    ui_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    ingest_thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds every listener and starts serving. Must be called inside a
    /// multi-threaded Tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let rules = match &config.rules {
            None => sampling::default_rules(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(err(format!("reading rules file {}", path.display())))?;
                sampling::parse_rules(&text).map_err(|e| StartError {
                    what: format!("rules file {}", path.display()),
                    source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                })?
            }
        };
        let (udp, granted) = udp::bind(config.udp).map_err(err(format!("UDP {}", config.udp)))?;
        let tcp = TcpListener::bind(config.tcp)
            .await
            .map_err(err(format!("TCP {}", config.tcp)))?;
        let ui = TcpListener::bind(config.ui)
            .await
            .map_err(err(format!("UI {}", config.ui)))?;
        let forward = match config.forward {
            None => None,
            Some(to) => {
                let local: SocketAddr = if to.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(local)
                    .await
                    .map_err(err("forwarding socket"))?;
                Some((s, to))
            }
        };
        let addrs = (
            udp.local_addr().map_err(err("UDP address"))?,
            tcp.local_addr().map_err(err("TCP address"))?,
            ui.local_addr().map_err(err("UI address"))?,
        );
        let mut app = App::new(config, rules);
        app.set_udp(addrs.0, granted);
        let app = Arc::new(app);
        let (stop, stopped) = watch::channel(false);
        let intake = udp::start(udp, forward, app.clone()).map_err(err("ingest thread"))?;
        let tasks = vec![
            intake.task,
            tokio::spawn(settle(app.clone())),
            tokio::spawn(serve(
                tcp,
                sampling_api::routes(app.clone()),
                stopped.clone(),
            )),
            tokio::spawn(serve(ui, ui_routes(app.clone()), stopped)),
        ];
        Ok(Self {
            app,
            udp_addr: addrs.0,
            tcp_addr: addrs.1,
            ui_addr: addrs.2,
            stop,
            tasks,
            ingest_thread: Some(intake.thread),
        })
    }

    /// The bound UDP intake address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound sampling API address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The bound address of the viewer and the X-Ray API.
    pub fn ui_addr(&self) -> SocketAddr {
        self.ui_addr
    }

    /// The shared state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops every task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // The receive task is gone, so the ingest thread sees its channel
        // close once it has stored what was queued.
        if let Some(t) = self.ingest_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The UI port: the viewer, the X-Ray API and OTLP/HTTP side by side. A
/// `POST` nobody serves gets the X-Ray API's error, anything else the
/// viewer's.
fn ui_routes(app: Arc<App>) -> Router {
    viewer::routes()
        .merge(xray_api::routes())
        .merge(otlp_http::routes())
        .fallback(|req: Request| async move {
            if req.method() == Method::POST {
                xray_api::unknown_operation(req.uri().path())
            } else {
                viewer::not_found()
            }
        })
        .layer(middleware::from_fn(same_origin_posts))
        .with_state(app)
}

/// Refuses a `POST` a browser sends from another site's page (it carries an
/// `Origin` that is not this server's): signatures are not checked here, so
/// without this any web page could change the sampling rules or import
/// traces. AWS clients send no `Origin`; the viewer sends its own.
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() == Method::POST
        && let Some(origin) = req.headers().get(header::ORIGIN)
    {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        if host.is_none() || origin_host != host {
            return (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"__type":"AccessDeniedException","message":"cross-origin requests are refused"}"#,
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Runs the trace-level checks on traces that went quiet.
async fn settle(app: Arc<App>) {
    let every = app
        .config
        .settle
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        app.store().settle(Instant::now(), app.config.settle);
    }
}

async fn serve(listener: TcpListener, router: Router, mut stopped: watch::Receiver<bool>) {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let _ = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
}
