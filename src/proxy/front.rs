//! Where every request comes in, beneath actix-web's `App`: its span and
//! access line begin (`telemetry::Begun`), and a fresh hit on the memory
//! tier is answered at once (`hot.rs`), without the app's request object,
//! routing, middleware or extractors: 0.4 µs of a 1 KiB hit's 7 in an A/B
//! (BENCHMARKS.md, fifth pass). Every other request goes on to the app,
//! carrying what the hot path had of it.

use std::future::{ready, Ready};

use actix_http::Request;
use actix_service::IntoServiceFactory;
use actix_web::body::BoxBody;
use actix_web::dev::{AppConfig, Response, Service, ServiceFactory, ServiceResponse};
use actix_web::{web, Error, HttpMessage};
use futures_util::future::{Either, LocalBoxFuture, MapOk, TryFutureExt};

use super::hot;
use super::state::ProxyState;
use crate::telemetry::{Begun, Logged};

/// The app's answer as the server takes it.
type Converted = fn(ServiceResponse<BoxBody>) -> Response<BoxBody>;

/// Serves `app` (an `App`), with fresh hits answered before it.
pub struct Front<F> {
    app: F,
    state: web::Data<ProxyState>,
}

impl<F: ServiceFactory<Request>> Front<F> {
    pub fn new(state: web::Data<ProxyState>, app: impl IntoServiceFactory<F, Request>) -> Self {
        Self {
            app: app.into_factory(),
            state,
        }
    }
}

impl<F> ServiceFactory<Request> for Front<F>
where
    F: ServiceFactory<
        Request,
        Config = AppConfig,
        Response = ServiceResponse<BoxBody>,
        Error = Error,
    >,
    F::Future: 'static,
{
    type Response = Response<BoxBody>;
    type Error = Error;
    type Config = AppConfig;
    type Service = FrontService<F::Service>;
    type InitError = F::InitError;
    type Future = LocalBoxFuture<'static, Result<Self::Service, Self::InitError>>;

    fn new_service(&self, config: AppConfig) -> Self::Future {
        let app = self.app.new_service(config);
        let state = self.state.clone();
        Box::pin(async move {
            Ok(FrontService {
                app: app.await?,
                state,
            })
        })
    }
}

pub struct FrontService<S> {
    app: S,
    state: web::Data<ProxyState>,
}

impl<S> Service<Request> for FrontService<S>
where
    S: Service<Request, Response = ServiceResponse<BoxBody>, Error = Error>,
{
    type Response = Response<BoxBody>;
    type Error = Error;
    type Future =
        Logged<Either<Ready<Result<Response<BoxBody>, Error>>, MapOk<S::Future, Converted>>>;

    actix_service::forward_ready!(app);

    fn call(&self, req: Request) -> Self::Future {
        let mut begun = Begun::request(&req);
        let hot = {
            let _entered = begun.span().enter();
            hot::answer(req.head(), &self.state)
        };
        let answer = match hot {
            Ok(response) => {
                let response: Response<BoxBody> = response.into();
                begun.answered(&req, response.status().as_u16(), "hit");
                Either::Left(ready(Ok(response)))
            }
            Err(handover) => {
                begun.lend_to(&req);
                if handover.taken.is_some() {
                    req.extensions_mut().insert(handover);
                }
                let converted: Converted = Into::into;
                let _entered = begun.span().enter();
                Either::Right(self.app.call(req).map_ok(converted))
            }
        };
        begun.until(answer)
    }
}
