//! The operations of the spec, resolved and checked: what the server generator works from.

use heck::{ToSnakeCase, ToUpperCamelCase};
use openapiv3::{OpenAPI, Parameter, SecurityScheme, StatusCode};

use crate::schema::{component_name, resolve_ref};
use crate::Error;

const JSON: &str = "application/json";

pub struct Api {
    pub operations: Vec<Operation>,
    /// The requests the service makes itself (`callbacks` of the operations), in spec order.
    pub callbacks: Vec<Callback>,
}

/// A request the service sends (an operation's `callbacks` entry), e.g. a delivery to a webhook.
pub struct Callback {
    /// The `operationId` of the operation declaring it.
    pub operation: String,
    /// The callback's key, e.g. `userEvent`.
    pub name: String,
    /// The runtime expression of the URL, e.g. `{$request.body#/url}`.
    pub expression: String,
    pub method: String,
    /// Component schema name of the JSON request body.
    pub body: String,
    /// Header parameters, in spec order: (name, required).
    pub headers: Vec<(String, bool)>,
}

impl Callback {
    pub fn rust_name(&self) -> String {
        self.name.to_snake_case()
    }
}

pub struct Operation {
    /// `operationId` as written in the spec.
    pub id: String,
    pub method: String,
    pub path: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub path_params: Vec<PathParam>,
    pub query_params: Vec<QueryParam>,
    /// Component schema name of the JSON request body.
    pub body: Option<String>,
    /// The body's array properties marked `x-single-as-list`: a lone value is wrapped into a
    /// one-element list after validation, before the body is typed.
    pub single_as_list: Vec<String>,
    pub responses: Vec<Response>,
    /// The bearer scheme applies (the operation's or the document's `security`).
    pub secured: bool,
    /// `x-required-scopes`: scopes the bearer token must carry.
    pub scopes: Vec<String>,
    /// It documents a 429: the generated handler spends one request of the caller's rate
    /// limit (after authentication, before input validation).
    pub rate_limited: bool,
}

pub struct PathParam {
    pub name: String,
}

pub struct QueryParam {
    pub name: String,
    pub description: Option<String>,
    pub required: bool,
    /// The resolved schema (what the validator checks).
    pub schema: openapiv3::Schema,
    /// Inserted before validation when the parameter is absent.
    pub default: Option<serde_json::Value>,
    pub kind: QueryKind,
}

/// The Rust type a query parameter deserializes into.
pub enum QueryKind {
    String,
    Integer,
    Boolean,
    /// A component schema (an enum), by name.
    Component(String),
    /// An inline string `enum`: the values, in spec order (a Rust enum of the query module).
    Enum(Vec<String>),
    /// `format: date-time`: parsed into an instant after validation.
    DateTime,
    /// An array of strings, `style: form`, `explode: true`: the key repeated, one value a
    /// one-element list.
    StringArray,
}

pub struct Response {
    pub status: u16,
    pub description: String,
    /// Component schema name of the JSON body; `None` for an empty or a text body.
    pub schema: Option<String>,
    /// A `text/plain` string body (e.g. Prometheus metrics).
    pub text: bool,
    /// Response headers, in spec order: the variant carries their values.
    pub headers: Vec<ResponseHeader>,
}

pub struct ResponseHeader {
    /// As written in the spec, e.g. `Retry-After`.
    pub name: String,
    pub required: bool,
    pub kind: HeaderKind,
}

/// The Rust type of a response header's value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// `type: integer`: an `i64`.
    Integer,
    /// `type: string`: an `axum::http::HeaderValue`, valid by construction.
    String,
}

/// The status whose response means "rate limited", and the header that says when to retry.
pub const TOO_MANY_REQUESTS: u16 = 429;
pub const RETRY_AFTER: &str = "Retry-After";

impl Operation {
    pub fn fn_name(&self) -> String {
        self.id.to_snake_case()
    }

    pub fn type_name(&self) -> String {
        self.id.to_upper_camel_case()
    }

    pub fn at(&self) -> String {
        format!("operation {} ({} {})", self.id, self.method, self.path)
    }
}

impl ResponseHeader {
    pub fn rust_name(&self) -> String {
        self.name.to_snake_case()
    }
}

impl PathParam {
    pub fn rust_name(&self) -> String {
        self.name.to_snake_case()
    }
}

impl QueryParam {
    pub fn rust_name(&self) -> String {
        self.name.to_snake_case()
    }
}

impl Api {
    pub fn from_spec(spec: &OpenAPI) -> Result<Self, Error> {
        let mut operations = Vec::new();
        let mut callbacks = Vec::new();
        for (path, item) in spec.paths.iter() {
            let item = item
                .as_item()
                .ok_or_else(|| Error::unsupported(format!("path {path}"), "a $ref path item"))?;
            if !item.parameters.is_empty() {
                return Err(Error::unsupported(
                    format!("path {path}"),
                    "path-level parameters (declare them on each operation)",
                ));
            }
            for (method, op) in item.iter() {
                let operation = operation(spec, path, method, op)?;
                callbacks.extend(operation_callbacks(spec, &operation, op)?);
                operations.push(operation);
            }
        }
        Ok(Self { operations, callbacks })
    }
}

fn operation(
    spec: &OpenAPI,
    path: &str,
    method: &str,
    op: &openapiv3::Operation,
) -> Result<Operation, Error> {
    let method = method.to_uppercase();
    let id = op
        .operation_id
        .clone()
        .ok_or_else(|| Error::invalid(format!("{method} {path}"), "operation without operationId"))?;
    let at = format!("operation {id} ({method} {path})");

    let (path_params, query_params) = parameters(spec, &at, path, op)?;
    let body = request_body(spec, &at, op)?;
    let single_as_list = match &body {
        Some(schema) => crate::validators::single_as_list_properties(spec, schema)?,
        None => Vec::new(),
    };
    let responses = responses(spec, &at, op)?;
    let secured = secured(spec, &at, op)?;
    let scopes = required_scopes(&at, op, secured)?;

    let rate_limited = responses.iter().any(|r| r.status == TOO_MANY_REQUESTS);
    let op = Operation {
        id,
        method,
        path: path.to_owned(),
        summary: op.summary.clone(),
        description: op.description.clone(),
        path_params,
        query_params,
        body,
        single_as_list,
        responses,
        secured,
        scopes,
        rate_limited,
    };
    check_generated_answers(&op)?;
    check_rate_limit(&op)?;
    Ok(op)
}

/// The operation's path and query parameters, in spec order; any other location is unsupported.
fn parameters(
    spec: &OpenAPI,
    at: &str,
    path: &str,
    op: &openapiv3::Operation,
) -> Result<(Vec<PathParam>, Vec<QueryParam>), Error> {
    let mut path_params = Vec::new();
    let mut query_params = Vec::new();
    for param in &op.parameters {
        let param = resolve_ref(spec, param, "parameters").map_err(|e| Error::invalid(at, e))?;
        match param {
            Parameter::Path { parameter_data, .. } => {
                path_params.push(path_param(spec, at, path, parameter_data)?);
            }
            Parameter::Query {
                parameter_data,
                allow_reserved: false,
                style: openapiv3::QueryStyle::Form,
                allow_empty_value: None | Some(false),
            } => query_params.push(query_param(spec, at, parameter_data)?),
            other => {
                return Err(Error::unsupported(
                    at,
                    format!("parameter {} in {}", other.parameter_data_ref().name, location(other)),
                ))
            }
        }
    }
    Ok((path_params, query_params))
}

/// A path parameter: a string that appears in the path template.
fn path_param(
    spec: &OpenAPI,
    at: &str,
    path: &str,
    parameter_data: &openapiv3::ParameterData,
) -> Result<PathParam, Error> {
    let schema = match &parameter_data.format {
        openapiv3::ParameterSchemaOrContent::Schema(s) => s,
        _ => return Err(Error::unsupported(at, "a path parameter without a schema")),
    };
    let schema = resolve_ref(spec, schema, "schemas").map_err(|e| Error::invalid(at, e))?;
    if !matches!(schema.schema_kind, openapiv3::SchemaKind::Type(openapiv3::Type::String(_))) {
        return Err(Error::unsupported(
            at,
            format!("path parameter {} of a type other than string", parameter_data.name),
        ));
    }
    if !path.contains(&format!("{{{}}}", parameter_data.name)) {
        return Err(Error::invalid(at, format!("path parameter {} is not in the path", parameter_data.name)));
    }
    Ok(PathParam { name: parameter_data.name.clone() })
}

/// A form-style query parameter of a scalar type or a component schema.
fn query_param(
    spec: &OpenAPI,
    at: &str,
    parameter_data: &openapiv3::ParameterData,
) -> Result<QueryParam, Error> {
    let at = format!("{at}, query parameter {}", parameter_data.name);
    let schema_ref = match &parameter_data.format {
        openapiv3::ParameterSchemaOrContent::Schema(s) => s,
        _ => return Err(Error::unsupported(&at, "a query parameter without a schema")),
    };
    let schema = resolve_ref(spec, schema_ref, "schemas").map_err(|e| Error::invalid(&at, e))?;
    let kind = match (&schema.schema_kind, component_name(schema_ref)) {
        (_, Some(name)) => QueryKind::Component(name),
        (openapiv3::SchemaKind::Type(openapiv3::Type::String(s)), None) if !s.enumeration.is_empty() => {
            let values: Vec<String> = s.enumeration.iter().flatten().cloned().collect();
            if values.len() != s.enumeration.len() {
                return Err(Error::unsupported(&at, "a null in a query parameter's enum"));
            }
            QueryKind::Enum(values)
        }
        (openapiv3::SchemaKind::Type(openapiv3::Type::String(s)), None)
            if s.format == openapiv3::VariantOrUnknownOrEmpty::Item(openapiv3::StringFormat::DateTime) =>
        {
            QueryKind::DateTime
        }
        (openapiv3::SchemaKind::Type(openapiv3::Type::String(_)), None) => QueryKind::String,
        (openapiv3::SchemaKind::Type(openapiv3::Type::Array(array)), None) => {
            let items = array.items.as_ref().ok_or_else(|| Error::invalid(&at, "array without items"))?;
            let items = crate::schema::resolve_boxed(spec, items).map_err(|e| Error::invalid(&at, e))?;
            // Only form style reaches here (see `parameters`); exploded is its default.
            let form = parameter_data.explode.unwrap_or(true);
            match &items.schema_kind {
                openapiv3::SchemaKind::Type(openapiv3::Type::String(s))
                    if form
                        && s.enumeration.is_empty()
                        && s.format == openapiv3::VariantOrUnknownOrEmpty::Empty =>
                {
                    QueryKind::StringArray
                }
                _ => {
                    return Err(Error::unsupported(
                        &at,
                        "a query array that is not of plain strings in form style, exploded",
                    ))
                }
            }
        }
        (openapiv3::SchemaKind::Type(openapiv3::Type::Integer(_)), None) => QueryKind::Integer,
        (openapiv3::SchemaKind::Type(openapiv3::Type::Boolean(_)), None) => QueryKind::Boolean,
        _ => {
            return Err(Error::unsupported(
                &at,
                "a query parameter that is not a string, integer, boolean or $ref",
            ))
        }
    };
    Ok(QueryParam {
        name: parameter_data.name.clone(),
        description: parameter_data.description.clone(),
        required: parameter_data.required,
        default: schema.schema_data.default.clone(),
        schema: schema.clone(),
        kind,
    })
}

/// The component schema name of the JSON request body, if the operation has one.
fn request_body(spec: &OpenAPI, at: &str, op: &openapiv3::Operation) -> Result<Option<String>, Error> {
    let Some(body) = &op.request_body else {
        return Ok(None);
    };
    let body = resolve_ref(spec, body, "requestBodies").map_err(|e| Error::invalid(at, e))?;
    if body.content.len() != 1 || !body.content.contains_key(JSON) {
        return Err(Error::unsupported(at, "a request body other than exactly application/json"));
    }
    let schema = body.content[JSON]
        .schema
        .as_ref()
        .ok_or_else(|| Error::invalid(at, "request body without a schema"))?;
    Ok(Some(component_name(schema).ok_or_else(|| {
        Error::unsupported(at, "an inline request body schema (use a $ref to components/schemas)")
    })?))
}

/// Every documented status, in spec order; at least one must be a success.
fn responses(spec: &OpenAPI, at: &str, op: &openapiv3::Operation) -> Result<Vec<Response>, Error> {
    let mut responses = Vec::new();
    for (status, response) in &op.responses.responses {
        let status = match status {
            StatusCode::Code(code) => *code,
            StatusCode::Range(_) => return Err(Error::unsupported(at, "a status range response")),
        };
        let response = resolve_ref(spec, response, "responses").map_err(|e| Error::invalid(at, e))?;
        responses.push(response_of(spec, at, status, response)?);
    }
    if op.responses.default.is_some() {
        return Err(Error::unsupported(at, "a default response (declare each status)"));
    }
    if !responses.iter().any(|r| (200..300).contains(&r.status)) {
        return Err(Error::invalid(at, "no success response"));
    }
    Ok(responses)
}

/// One response: no body, a `text/plain` string or a JSON component schema, and its headers.
fn response_of(
    spec: &OpenAPI,
    at: &str,
    status: u16,
    response: &openapiv3::Response,
) -> Result<Response, Error> {
    let text = response.content.len() == 1 && response.content.contains_key("text/plain");
    let schema =
        match response.content.len() {
            0 => None,
            1 if text => {
                let is_string =
                    response.content["text/plain"].schema.as_ref().and_then(|s| s.as_item()).is_some_and(
                        |s| matches!(s.schema_kind, openapiv3::SchemaKind::Type(openapiv3::Type::String(_))),
                    );
                if !is_string {
                    return Err(Error::unsupported(
                        at,
                        format!("response {status}: text/plain without `type: string`"),
                    ));
                }
                None
            }
            1 if response.content.contains_key(JSON) => {
                let schema = response.content[JSON]
                    .schema
                    .as_ref()
                    .ok_or_else(|| Error::invalid(at, format!("response {status} without a schema")))?;
                Some(component_name(schema).ok_or_else(|| {
                    Error::unsupported(at, format!("an inline schema in response {status}"))
                })?)
            }
            _ => {
                return Err(Error::unsupported(
                    at,
                    format!("response {status} with content other than application/json"),
                ))
            }
        };
    let headers = response_headers(spec, &format!("{at}, response {status}"), response)?;
    Ok(Response { status, description: response.description.clone(), schema, text, headers })
}

/// Whether the bearer scheme applies (the operation's or the document's `security`); any
/// other scheme is unsupported.
fn secured(spec: &OpenAPI, at: &str, op: &openapiv3::Operation) -> Result<bool, Error> {
    let security = op.security.as_ref().or(spec.security.as_ref());
    let mut secured = false;
    for requirement in security.into_iter().flatten() {
        for name in requirement.keys() {
            let scheme = spec
                .components
                .as_ref()
                .and_then(|c| c.security_schemes.get(name))
                .ok_or_else(|| Error::invalid(at, format!("unknown security scheme {name}")))?;
            let scheme = resolve_ref(spec, scheme, "securitySchemes").map_err(|e| Error::invalid(at, e))?;
            match scheme {
                SecurityScheme::HTTP { scheme, .. } if scheme.eq_ignore_ascii_case("bearer") => {
                    secured = true
                }
                _ => {
                    return Err(Error::unsupported(at, format!("security scheme {name} (only http bearer)")))
                }
            }
        }
    }
    Ok(secured)
}

/// `x-required-scopes`, which only a bearer-secured operation can check.
fn required_scopes(at: &str, op: &openapiv3::Operation, secured: bool) -> Result<Vec<String>, Error> {
    let scopes = match op.extensions.get("x-required-scopes") {
        None => Vec::new(),
        Some(value) => serde_json::from_value::<Vec<String>>(value.clone())
            .map_err(|_| Error::invalid(at, "x-required-scopes must be a list of strings"))?,
    };
    if !scopes.is_empty() && !secured {
        return Err(Error::invalid(at, "x-required-scopes on an operation without bearer security"));
    }
    Ok(scopes)
}

/// The generated handler answers 401, 403 and 400 itself, so the contract must document them.
fn check_generated_answers(op: &Operation) -> Result<(), Error> {
    let required: &[(bool, u16, &str)] = &[
        (op.secured, 401, "it is secured"),
        (op.secured, 403, "it is secured"),
        (op.body.is_some() || !op.query_params.is_empty(), 400, "it validates its input"),
    ];
    for (applies, status, why) in required {
        if *applies && !op.responses.iter().any(|r| r.status == *status) {
            return Err(Error::invalid(op.at(), format!("must document a {status} response because {why}")));
        }
    }
    Ok(())
}

/// The operation's `callbacks`: each a single operation with a JSON component body and only
/// header parameters (what a receiver must read).
fn operation_callbacks(
    spec: &OpenAPI,
    operation: &Operation,
    op: &openapiv3::Operation,
) -> Result<Vec<Callback>, Error> {
    let mut callbacks = Vec::new();
    for (name, callback) in &op.callbacks {
        let at = format!("{}, callback {name}", operation.at());
        for (expression, item) in callback {
            let mut methods = item.iter();
            let (Some((method, cb)), None) = (methods.next(), methods.next()) else {
                return Err(Error::unsupported(&at, "a callback with other than exactly one operation"));
            };
            let body = request_body(spec, &at, cb)?
                .ok_or_else(|| Error::unsupported(&at, "a callback without a request body"))?;
            let mut headers = Vec::new();
            for param in &cb.parameters {
                match resolve_ref(spec, param, "parameters").map_err(|e| Error::invalid(&at, e))? {
                    Parameter::Header { parameter_data, .. } => {
                        headers.push((parameter_data.name.clone(), parameter_data.required))
                    }
                    other => {
                        return Err(Error::unsupported(
                            &at,
                            format!(
                                "parameter {} in {} (only headers)",
                                other.parameter_data_ref().name,
                                location(other)
                            ),
                        ))
                    }
                }
            }
            callbacks.push(Callback {
                operation: operation.id.clone(),
                name: name.clone(),
                expression: expression.clone(),
                method: method.to_uppercase(),
                body,
                headers,
            });
        }
    }
    Ok(callbacks)
}

/// A documented 429 makes the operation rate limited, per client: that needs a caller, and
/// the generated answer carries `Retry-After`, so the contract must say so.
fn check_rate_limit(op: &Operation) -> Result<(), Error> {
    let Some(response) = op.responses.iter().find(|r| r.status == TOO_MANY_REQUESTS) else {
        return Ok(());
    };
    if !op.secured {
        return Err(Error::invalid(
            op.at(),
            "a 429 response (a rate limit per client) on an operation without bearer security",
        ));
    }
    let retry_after = response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(RETRY_AFTER));
    if !retry_after.is_some_and(|h| h.required && h.kind == HeaderKind::Integer) {
        return Err(Error::invalid(
            op.at(),
            format!(
                "response 429 must declare a required integer {RETRY_AFTER} header (the server sends one)"
            ),
        ));
    }
    Ok(())
}

fn response_headers(
    spec: &OpenAPI,
    at: &str,
    response: &openapiv3::Response,
) -> Result<Vec<ResponseHeader>, Error> {
    let mut headers = Vec::new();
    for (name, header) in &response.headers {
        let at = format!("{at}, header {name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Error::invalid(&at, "not a valid HTTP header name"));
        }
        // The generated answer sets Content-Type itself (OpenAPI says to ignore it here).
        if name.eq_ignore_ascii_case("content-type") {
            return Err(Error::unsupported(&at, "a Content-Type response header"));
        }
        let header = resolve_ref(spec, header, "headers").map_err(|e| Error::invalid(&at, e))?;
        let schema = match &header.format {
            openapiv3::ParameterSchemaOrContent::Schema(s) => s,
            _ => return Err(Error::unsupported(&at, "a header with `content` (use `schema`)")),
        };
        let schema = resolve_ref(spec, schema, "schemas").map_err(|e| Error::invalid(&at, e))?;
        let kind = match &schema.schema_kind {
            openapiv3::SchemaKind::Type(openapiv3::Type::Integer(_)) => HeaderKind::Integer,
            openapiv3::SchemaKind::Type(openapiv3::Type::String(_)) => HeaderKind::String,
            _ => return Err(Error::unsupported(&at, "a header that is not an integer or a string")),
        };
        let header = ResponseHeader { name: name.clone(), required: header.required, kind };
        let field = header.rust_name();
        // The variant's fields: `body`, then one per header.
        if field == "body" || syn::parse_str::<syn::Ident>(&field).is_err() {
            return Err(Error::unsupported(
                &at,
                format!("a header whose Rust name `{field}` is not a free field name"),
            ));
        }
        if headers.iter().any(|h: &ResponseHeader| h.rust_name() == field) {
            return Err(Error::invalid(&at, "two headers of this response have the same Rust name"));
        }
        headers.push(header);
    }
    Ok(headers)
}

fn location(p: &Parameter) -> &'static str {
    match p {
        Parameter::Query { .. } => "query",
        Parameter::Header { .. } => "header",
        Parameter::Path { .. } => "path",
        Parameter::Cookie { .. } => "cookie",
    }
}
