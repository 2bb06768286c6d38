//! GitHub's OpenAPI description as vendored by `cargo xtask fixtures` (`fixtures/github-openapi/`): the
//! operations booty calls, their parameters, request schemas and documented examples, and the routing of a
//! request to its operation.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde_json::Value;

use super::schema;

/// The vendored fixture, compiled in: tests never fetch it.
const FIXTURE: &str = include_str!("../../fixtures/github-openapi/operations.json");

/// Which of GitHub's descriptions a fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// github.com (`generated/api.github.com.json`), the REST API at the root.
    DotCom,
    /// GitHub Enterprise Server (`generated/ghes-3.19.json`), the REST API under `/api/v3`.
    Enterprise,
}

impl Flavor {
    fn key(self) -> &'static str {
        match self {
            Self::DotCom => "api.github.com",
            Self::Enterprise => "ghes-3.19",
        }
    }

    /// Where the REST API starts on the server.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Self::DotCom => "",
            Self::Enterprise => "/api/v3",
        }
    }
}

/// One description's operations.
#[derive(Debug)]
pub(crate) struct Description {
    pub(crate) operations: Vec<Operation>,
    examples: serde_json::Map<String, Value>,
    schemas: serde_json::Map<String, Value>,
}

#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) id: String,
    pub(crate) method: String,
    segments: Vec<Segment>,
    /// Query parameters by name, with their schemas.
    pub(crate) query: BTreeMap<String, Value>,
    /// Path parameters by name, with their schemas.
    pub(crate) path_parameters: BTreeMap<String, Value>,
    /// The JSON request body's schema, and whether a body is required.
    pub(crate) request: Option<(bool, Value)>,
    /// Per status: the name of the documented example, or of the error schema.
    responses: BTreeMap<u16, Documented>,
}

#[derive(Debug)]
enum Documented {
    Example(String),
    Schema(String),
    Nothing,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Parameter(String),
}

impl Operation {
    /// Whether the operation's last path parameter is a git reference, which may hold slashes.
    fn greedy_ref(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::Parameter(name)) if name == "ref")
    }
}

impl Description {
    /// The description `flavor` names, parsed once per process.
    pub(crate) fn get(flavor: Flavor) -> &'static Self {
        static PARSED: OnceLock<HashMap<&'static str, Description>> = OnceLock::new();
        let all = PARSED.get_or_init(|| {
            let fixture: Value = serde_json::from_str(FIXTURE).expect("the vendored fixture parses");
            [Flavor::DotCom, Flavor::Enterprise]
                .into_iter()
                .map(|flavor| {
                    let description = Self::parse(&fixture["descriptions"][flavor.key()]);
                    let unsupported = description.unsupported_keywords();
                    assert!(
                        unsupported.is_empty(),
                        "the vendored {} description uses schema keywords the fake cannot check: {unsupported:?}",
                        flavor.key()
                    );
                    (flavor.key(), description)
                })
                .collect()
        });
        &all[flavor.key()]
    }

    fn parse(description: &Value) -> Self {
        let mut operations = Vec::new();
        for (id, operation) in description["operations"]
            .as_object()
            .expect("operations is an object")
        {
            let path = operation["path"].as_str().expect("a path").to_owned();
            let segments = path
                .trim_start_matches('/')
                .split('/')
                .map(
                    |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Parameter(name.to_owned()),
                        None => Segment::Literal(segment.to_owned()),
                    },
                )
                .collect();
            let mut query = BTreeMap::new();
            let mut path_parameters = BTreeMap::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().expect("a name").to_owned();
                let schema = parameter["schema"].clone();
                match parameter["in"].as_str() {
                    Some("query") => query.insert(name, schema),
                    Some("path") => path_parameters.insert(name, schema),
                    _ => None,
                };
            }
            let request = operation["request"].as_object().map(|request| {
                (
                    request["required"].as_bool().unwrap_or(false),
                    request["schema"].clone(),
                )
            });
            let responses = operation["responses"]
                .as_object()
                .expect("responses")
                .iter()
                .map(|(status, documented)| {
                    let documented = if let Some(name) = documented["example"].as_str() {
                        Documented::Example(name.to_owned())
                    } else if let Some(name) = documented["schema"].as_str() {
                        Documented::Schema(name.to_owned())
                    } else {
                        Documented::Nothing
                    };
                    (status.parse().expect("a status code"), documented)
                })
                .collect();
            operations.push(Operation {
                id: id.clone(),
                method: operation["method"]
                    .as_str()
                    .expect("a method")
                    .to_uppercase(),
                segments,
                query,
                path_parameters,
                request,
                responses,
            });
        }
        Self {
            operations,
            examples: description["examples"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            schemas: description["schemas"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The operation for `method` on `path` (below the API's prefix) and its path parameters. A template
    /// with more literal segments wins (`issues/comments/{id}` over `issues/{number}`).
    pub(crate) fn route(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&Operation, HashMap<String, String>)> {
        let all: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|operation| {
                operation.method == method
                    && (operation.segments.len() == all.len()
                        || (operation.greedy_ref() && all.len() > operation.segments.len()))
            })
            .filter_map(|operation| {
                let mut parameters = HashMap::new();
                let mut literals = 0;
                // A git reference (`heads/feature/x`) is one parameter with slashes in it, as GitHub
                // routes it: the trailing segments join into the last one.
                let mut parts: Vec<String> = all.iter().map(|part| (*part).to_owned()).collect();
                if parts.len() > operation.segments.len() {
                    let tail = parts.split_off(operation.segments.len() - 1).join("/");
                    parts.push(tail);
                }
                for (segment, part) in operation.segments.iter().zip(&parts) {
                    match segment {
                        Segment::Literal(literal) if literal == part.as_str() => literals += 1,
                        Segment::Literal(_) => return None,
                        Segment::Parameter(name) => {
                            let decoded =
                                url::form_urlencoded::parse(format!("x={part}").as_bytes())
                                    .next()
                                    .map(|(_, value)| value.into_owned())
                                    .unwrap_or_default();
                            parameters.insert(name.clone(), decoded);
                        }
                    }
                }
                Some((literals, operation, parameters))
            })
            .max_by_key(|(literals, _, _)| *literals)
            .map(|(_, operation, parameters)| (operation, parameters))
    }

    /// The documented example of `operation`'s answer `status`.
    pub(crate) fn example(&self, operation: &Operation, status: u16) -> &Value {
        match operation.responses.get(&status) {
            Some(Documented::Example(name)) => &self.examples[name],
            _ => panic!("{} documents no example for {status}", operation.id),
        }
    }

    /// The error schema `operation` documents for `status`, if any.
    pub(crate) fn error_schema(&self, operation: &Operation, status: u16) -> Option<&Value> {
        match operation.responses.get(&status) {
            Some(Documented::Schema(name)) => self.schemas.get(name),
            _ => None,
        }
    }

    /// Keywords the validator does not know, in any schema of the description.
    pub(crate) fn unsupported_keywords(&self) -> Vec<String> {
        let mut out = Vec::new();
        for operation in &self.operations {
            if let Some((_, schema)) = &operation.request {
                schema::unsupported_keywords(schema, &format!("{} body", operation.id), &mut out);
            }
            for (name, schema) in operation.query.iter().chain(&operation.path_parameters) {
                schema::unsupported_keywords(schema, &format!("{} {name}", operation.id), &mut out);
            }
        }
        for (name, schema) in &self.schemas {
            schema::unsupported_keywords(schema, name, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_descriptions_load_with_every_operation_and_only_known_keywords() {
        for flavor in [Flavor::DotCom, Flavor::Enterprise] {
            let description = Description::get(flavor);
            assert_eq!(
                description.operations.len(),
                super::super::rest::PERMISSIONS.len()
            );
            for (id, _) in super::super::rest::PERMISSIONS {
                assert!(
                    description
                        .operations
                        .iter()
                        .any(|operation| operation.id == *id),
                    "{flavor:?} lacks {id}"
                );
            }
            assert_eq!(description.unsupported_keywords(), Vec::<String>::new());
        }
    }

    #[test]
    fn routes_prefer_literal_segments() {
        let description = Description::get(Flavor::DotCom);
        let (operation, parameters) = description
            .route("PATCH", "/repos/octo/hello/issues/comments/5")
            .unwrap();
        assert_eq!(operation.id, "issues/update-comment");
        assert_eq!(parameters["comment_id"], "5");
        let (operation, parameters) = description
            .route("POST", "/repos/octo/hello/issues/7/comments")
            .unwrap();
        assert_eq!(operation.id, "issues/create-comment");
        assert_eq!(parameters["issue_number"], "7");
        assert!(
            description
                .route("DELETE", "/repos/octo/hello/issues/7/comments")
                .is_none()
        );
    }
}
