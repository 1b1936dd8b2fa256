//! The API's one route table. The router, the `Allow` list of a 405, the route label of the
//! request metrics and the OpenAPI document's paths all derive from [`ROUTES`].

use std::sync::LazyLock;
use warp::http::Method;

/// What a request asks for, once its path and method are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /api/v01/customers`: the page of customers the query selects.
    FindCustomers,
    /// `PUT /api/v01/customers`: registers a customer.
    CreateCustomer,
    /// `GET /api/v01/customers/{customerId}`: one customer.
    GetCustomer,
    /// `POST /api/v01/customers/{customerId}`: changes the fields the JSON or XML body names.
    UpdateCustomer,
    /// `PATCH /api/v01/customers/{customerId}`: changes what a JSON merge patch names.
    PatchCustomer,
    /// `DELETE /api/v01/customers/{customerId}`.
    DeleteCustomer,
    /// `GET /api/v01/customers/{customerId}/events`: the records that built a customer.
    CustomerHistory,
    /// `POST /api/v01/customers/{customerId}/erasure`: erases a customer's personal data.
    EraseCustomer,
    /// `GET /api/v01/erasures/{requestId}`: where an erasure is.
    ErasureStatus,
    /// `GET /api/v01/admin/rejected-events`: records kept out of the read model.
    ListRejectedEvents,
    /// `GET /api/v01/admin/snapshot`: the read model as a snapshot.
    TakeSnapshot,
    /// `GET /api/v01/openapi.json`: the OpenAPI document.
    OpenApiDocument,
    /// `GET /healthz`: liveness.
    Liveness,
    /// `GET /readyz`: readiness.
    Readiness,
    /// `GET /metrics`: the Prometheus text exposition.
    Metrics,
}

/// A path of the API and what each method it answers does. Any other method is a 405 naming
/// these methods in `Allow`. `HEAD` answers as `GET` without the body.
#[derive(Debug)]
pub struct Route {
    /// The path as the OpenAPI document names it; `{customerId}` or `{requestId}` stands for one
    /// path segment.
    pub path: &'static str,
    /// The methods this path answers, in the order `Allow` lists them, and their operations.
    pub methods: &'static [(Method, Operation)],
}

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    Route {
        path: "/api/v01/customers",
        methods: &[
            (Method::GET, Operation::FindCustomers),
            (Method::HEAD, Operation::FindCustomers),
            (Method::PUT, Operation::CreateCustomer),
        ],
    },
    Route {
        path: "/api/v01/customers/{customerId}",
        methods: &[
            (Method::GET, Operation::GetCustomer),
            (Method::HEAD, Operation::GetCustomer),
            (Method::POST, Operation::UpdateCustomer),
            (Method::PATCH, Operation::PatchCustomer),
            (Method::DELETE, Operation::DeleteCustomer),
        ],
    },
    Route {
        path: "/api/v01/customers/{customerId}/events",
        methods: &[
            (Method::GET, Operation::CustomerHistory),
            (Method::HEAD, Operation::CustomerHistory),
        ],
    },
    Route {
        path: "/api/v01/customers/{customerId}/erasure",
        methods: &[(Method::POST, Operation::EraseCustomer)],
    },
    Route {
        path: "/api/v01/erasures/{requestId}",
        methods: &[
            (Method::GET, Operation::ErasureStatus),
            (Method::HEAD, Operation::ErasureStatus),
        ],
    },
    Route {
        path: "/api/v01/admin/rejected-events",
        methods: &[
            (Method::GET, Operation::ListRejectedEvents),
            (Method::HEAD, Operation::ListRejectedEvents),
        ],
    },
    Route {
        path: "/api/v01/admin/snapshot",
        methods: &[(Method::GET, Operation::TakeSnapshot)],
    },
    Route {
        path: "/api/v01/openapi.json",
        methods: &[
            (Method::GET, Operation::OpenApiDocument),
            (Method::HEAD, Operation::OpenApiDocument),
        ],
    },
    Route {
        path: "/healthz",
        methods: &[
            (Method::GET, Operation::Liveness),
            (Method::HEAD, Operation::Liveness),
        ],
    },
    Route {
        path: "/readyz",
        methods: &[
            (Method::GET, Operation::Readiness),
            (Method::HEAD, Operation::Readiness),
        ],
    },
    Route {
        path: "/metrics",
        methods: &[
            (Method::GET, Operation::Metrics),
            (Method::HEAD, Operation::Metrics),
        ],
    },
];

/// A request's path matched to its route.
#[derive(Debug)]
pub struct Matched<'a> {
    /// The route whose path template the request's path fits.
    pub route: &'static Route,
    /// The `{customerId}` or `{requestId}` segment as sent (not percent-decoded), on the routes
    /// that have one.
    pub parameter: Option<&'a str>,
}

/// The route `path` fits, if any. One leading and one trailing slash are allowed
/// (`/healthz/`); an empty segment never fits a parameter.
pub fn resolve(path: &str) -> Option<Matched<'_>> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    ROUTES.iter().find_map(|route| {
        let mut parameter = None;
        let mut segments = path.split('/');
        for expected in route.path.trim_start_matches('/').split('/') {
            let segment = segments.next()?;
            if expected.starts_with('{') {
                if segment.is_empty() {
                    return None;
                }
                parameter = Some(segment);
            } else if segment != expected {
                return None;
            }
        }
        segments
            .next()
            .is_none()
            .then_some(Matched { route, parameter })
    })
}

impl Route {
    /// What `method` does on this route; `None` when the route does not answer it (a 405).
    pub fn operation(&self, method: &Method) -> Option<Operation> {
        self.methods
            .iter()
            .find(|(answered, _)| answered == method)
            .map(|(_, operation)| *operation)
    }

    /// The methods this route answers, as a 405's `Allow` lists them (`GET, HEAD, PUT`).
    pub fn allow(&self) -> &'static str {
        &DERIVED[self.index()].allow
    }

    /// The route as request metrics label it: the path with `:id` for a parameter (some
    /// text-format parsers drop samples whose label values hold braces).
    pub fn metrics_label(&self) -> &'static str {
        &DERIVED[self.index()].metrics_label
    }

    fn index(&self) -> usize {
        ROUTES
            .iter()
            .position(|route| std::ptr::eq(route, self))
            .expect("every route is one of ROUTES")
    }
}

/// The label of a request to `path` in the request metrics: its route's template, never the
/// path itself (ids and random paths must not each make a series), or `other`.
pub fn metrics_label(path: &str) -> &'static str {
    resolve(path).map_or("other", |matched| matched.route.metrics_label())
}

/// What each route's table entry implies, worked out once.
struct Derived {
    allow: String,
    metrics_label: String,
}

static DERIVED: LazyLock<Vec<Derived>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|route| Derived {
            allow: route
                .methods
                .iter()
                .map(|(method, _)| method.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            metrics_label: route
                .path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        ":id"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/"),
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_fits_its_route_with_or_without_one_trailing_slash() {
        let matched = resolve("/api/v01/customers/abc/events/").unwrap();
        assert_eq!(matched.route.path, "/api/v01/customers/{customerId}/events");
        assert_eq!(matched.parameter, Some("abc"));
        let erasure = resolve("/api/v01/erasures/e-1").unwrap();
        assert_eq!(erasure.route.path, "/api/v01/erasures/{requestId}");
        assert_eq!(erasure.parameter, Some("e-1"));
        assert_eq!(resolve("/healthz").unwrap().route.path, "/healthz");
        assert_eq!(resolve("/healthz/").unwrap().route.path, "/healthz");
        for unrouted in [
            "/",
            "",
            "/healthz//",
            "//healthz",
            "/api/v01/customers//events",
            "/api/v01/customers/abc/events/more",
            "/api/v01",
            "/Healthz",
        ] {
            assert!(resolve(unrouted).is_none(), "{unrouted}");
        }
    }

    #[test]
    fn allow_lists_and_metrics_labels_come_from_the_table() {
        let item = resolve("/api/v01/customers/abc").unwrap().route;
        assert_eq!(item.allow(), "GET, HEAD, POST, PATCH, DELETE");
        assert_eq!(item.metrics_label(), "/api/v01/customers/:id");
        assert_eq!(
            item.operation(&Method::PATCH),
            Some(Operation::PatchCustomer)
        );
        assert_eq!(item.operation(&Method::PUT), None);
        assert_eq!(metrics_label("/api/v01/customers"), "/api/v01/customers");
        assert_eq!(metrics_label("/no/such/path"), "other");
        assert_eq!(
            resolve("/api/v01/admin/snapshot").unwrap().route.allow(),
            "GET"
        );
    }
}
