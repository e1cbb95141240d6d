//! The server side: models, the `Api` trait, one response enum per operation, validators, router.

use std::collections::BTreeSet;

use heck::ToUpperCamelCase;
use openapiv3::OpenAPI;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};

use crate::model::{Api, Callback, HeaderKind, Operation, QueryKind, QueryParam, Response, ResponseHeader};
use crate::schema::{component_schema, typify_schemas};
use crate::{validators, Error};

pub fn generate(spec: &OpenAPI, api: &Api) -> Result<TokenStream, Error> {
    // Validators first: their errors name the property (typify's would only name the type).
    let bodies: BTreeSet<&String> = api
        .operations
        .iter()
        .filter_map(|op| op.body.as_ref())
        .chain(api.callbacks.iter().map(|c| &c.body))
        .collect();
    let mut validators =
        bodies.into_iter().map(|schema| validators::generate(spec, schema)).collect::<Result<Vec<_>, _>>()?;
    for op in api.operations.iter().filter(|op| !op.query_params.is_empty()) {
        let properties: Vec<_> = op
            .query_params
            .iter()
            .map(|p| validators::Property { name: &p.name, schema: &p.schema, required: p.required })
            .collect();
        let doc = format!("Validates the query of `{}` (after defaults and number conversion).", op.id);
        validators.push(validators::validator(spec, &op.at(), &query_validator(op), &doc, &properties)?);
    }
    let types = types(spec)?;
    let operation_enum = operation_enum(api);
    let responses = api.operations.iter().map(response_enum).collect::<Vec<_>>();
    let methods = api.operations.iter().map(trait_method);
    let handlers = api.operations.iter().map(handler).collect::<Vec<_>>();
    let queries = api.operations.iter().filter(|op| !op.query_params.is_empty()).map(query_struct);
    let query_enums = api.operations.iter().flat_map(query_enums);
    let callbacks = api.callbacks.iter().map(|c| callback(spec, c)).collect::<Result<Vec<_>, _>>()?;
    let router = router(api);

    Ok(quote! {
        /// The contract's schemas as Rust types.
        #[allow(clippy::all, dead_code, unused_imports)]
        pub mod types {
            #types
        }

        #operation_enum

        /// One enum per operation, one variant per documented status: a status/body pair
        /// the contract does not allow does not compile.
        pub mod responses {
            use super::types;
            use axum::response::IntoResponse;
            #(#responses)*
        }

        /// Query parameters of the operations that have them, as validated and typed.
        pub mod queries {
            #[allow(unused_imports)]
            use super::types;
            #(#queries)*
            #(#query_enums)*
        }

        /// The requests the service makes itself (the contract's `callbacks`): what a receiver
        /// gets, so that the sender can be checked against the contract.
        pub mod callbacks {
            #(#callbacks)*
        }

        /// Request validators derived from the schema constraints (class-validator semantics).
        pub mod validate {
            #(#validators)*
        }

        /// What the hand-written server implements: one method per `operationId`, no defaults,
        /// so an operation added to the spec does not compile until it is implemented.
        pub trait Api: Send + Sync + 'static {
            /// Who the caller is, as established by [`Api::authenticate`].
            type Principal: Send + 'static;
            /// An unexpected failure inside a handler.
            type Error: axum::response::IntoResponse + Send;

            /// Checks the bearer token (and scopes) for a secured operation.
            fn authenticate(
                &self,
                operation: Operation,
                headers: &axum::http::HeaderMap,
            ) -> impl std::future::Future<Output = Result<Self::Principal, crate::rt::Rejection>> + Send;

            /// Spends one request of the caller's rate limit, for an operation that documents a
            /// 429 ([`Operation::rate_limited`]); called after authentication, before the input is
            /// validated. `Err` (normally [`crate::rt::Rejection::TooManyRequests`]) is answered
            /// through [`Api::reject`].
            fn rate_limit(&self, operation: Operation, principal: &Self::Principal) -> Result<(), crate::rt::Rejection>;

            /// Renders a request the generated layer turned away, in the contract's error shape.
            fn reject(&self, rejection: crate::rt::Rejection) -> axum::response::Response;

            /// Largest request body accepted, in bytes; larger ones are rejected before anything else.
            fn body_limit(&self) -> usize;

            #(#methods)*
        }

        mod handlers {
            use std::sync::Arc;
            use axum::extract::{Request, State};
            use axum::response::{IntoResponse, Response};
            #[allow(unused_imports)]
            use super::{Api, Operation, queries, types, validate};
            use crate::rt::{self, Rejection};

            #(#handlers)*

            pub async fn no_route<A: Api>(State(api): State<Arc<A>>, request: Request) -> Response {
                let path = request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |p| p.as_str().to_owned());
                api.reject(Rejection::NoRoute { method: request.method().clone(), path })
            }
        }

        #router
    })
}

fn types(spec: &OpenAPI) -> Result<TokenStream, Error> {
    let mut settings = typify::TypeSpaceSettings::default();
    settings.with_struct_builder(false).with_derive("PartialEq".to_owned());
    let mut space = typify::TypeSpace::new(&settings);
    space.add_ref_types(typify_schemas(spec)?).map_err(|e| Error::Types(e.to_string()))?;
    let mut file: syn::File = syn::parse2(space.to_stream())
        .map_err(|e| Error::Internal(format!("typify output does not parse: {e}")))?;
    for item in &mut file.items {
        if let syn::Item::Struct(item) = item {
            restore_property_order(spec, item);
        }
    }
    Ok(file.into_token_stream())
}

/// typify sorts struct fields by name; the contract's bodies keep the spec's key order
/// (`message`, `error`, `statusCode`), and serde serializes in field order, so put it back.
fn restore_property_order(spec: &OpenAPI, item: &mut syn::ItemStruct) {
    let Ok(schema) = component_schema(spec, &item.ident.to_string()) else {
        return;
    };
    let openapiv3::SchemaKind::Type(openapiv3::Type::Object(object)) = &schema.schema_kind else {
        return;
    };
    let syn::Fields::Named(fields) = &mut item.fields else {
        return;
    };
    let position = |field: &syn::Field| {
        let name = json_name(field);
        object.properties.get_index_of(&name).unwrap_or(usize::MAX)
    };
    let mut sorted: Vec<syn::Field> = fields.named.iter().cloned().collect();
    sorted.sort_by_key(|f| position(f));
    fields.named = sorted.into_iter().collect();
}

/// The JSON key of a generated field: its `#[serde(rename = "…")]`, else its name.
fn json_name(field: &syn::Field) -> String {
    for attr in &field.attrs {
        let text = attr.to_token_stream().to_string();
        if let Some(start) = text.find("rename = \"") {
            let rest = &text[start + "rename = \"".len()..];
            if let Some(end) = rest.find('"') {
                return rest[..end].to_owned();
            }
        }
    }
    field.ident.as_ref().map(|i| i.to_string().trim_start_matches("r#").to_owned()).unwrap_or_default()
}

fn operation_enum(api: &Api) -> TokenStream {
    let variants: Vec<_> = api.operations.iter().map(|op| format_ident!("{}", op.type_name())).collect();
    let ids = api.operations.iter().map(|op| op.id.as_str());
    let methods = api.operations.iter().map(|op| op.method.as_str());
    let paths = api.operations.iter().map(|op| op.path.as_str());
    let secured = api.operations.iter().map(|op| op.secured);
    let rate_limited = api.operations.iter().map(|op| op.rate_limited);
    let scopes = api.operations.iter().map(|op| {
        let s = &op.scopes;
        quote! { &[#(#s),*] }
    });
    let docs = api
        .operations
        .iter()
        .map(|op| format!("`{} {}`: {}", op.method, op.path, op.summary.as_deref().unwrap_or(&op.id)));
    let v = &variants;
    quote! {
        /// The operations of the contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            #( #[doc = #docs] #variants, )*
        }

        impl Operation {
            /// Every operation, in spec order.
            pub const ALL: &'static [Operation] = &[#(Operation::#v),*];

            pub fn operation_id(self) -> &'static str {
                match self { #(Operation::#v => #ids,)* }
            }

            /// HTTP method, upper case.
            pub fn method(self) -> &'static str {
                match self { #(Operation::#v => #methods,)* }
            }

            /// Path template as written in the spec.
            pub fn path(self) -> &'static str {
                match self { #(Operation::#v => #paths,)* }
            }

            /// Whether a bearer token is required.
            pub fn secured(self) -> bool {
                match self { #(Operation::#v => #secured,)* }
            }

            /// Scopes the token must carry (`x-required-scopes`).
            pub fn required_scopes(self) -> &'static [&'static str] {
                match self { #(Operation::#v => #scopes,)* }
            }

            /// Whether each request spends one request of the caller's rate limit (the
            /// operation documents a 429).
            pub fn rate_limited(self) -> bool {
                match self { #(Operation::#v => #rate_limited,)* }
            }
        }
    }
}

fn variant_name(status: u16) -> syn::Ident {
    let name = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| r.to_upper_camel_case())
        .unwrap_or_else(|| format!("Status{status}"));
    format_ident!("{}", name)
}

fn response_enum(op: &Operation) -> TokenStream {
    let name = format_ident!("{}", op.type_name());
    let doc = format!("Responses of `{}`.", op.id);
    let variants = op.responses.iter().map(|response| {
        let v = variant_name(response.status);
        let doc = format!("{}: {}", response.status, response.description);
        let body = body_type(response);
        if response.headers.is_empty() {
            return match body {
                Some(body) => quote! { #[doc = #doc] #v(#body), },
                None => quote! { #[doc = #doc] #v, },
            };
        }
        let body = body.map(|body| quote! { body: #body, });
        let headers = response.headers.iter().map(header_field);
        quote! { #[doc = #doc] #v { #body #(#headers)* }, }
    });
    let arms = op.responses.iter().map(|response| {
        let Response { status, schema, text, headers, .. } = response;
        let v = variant_name(*status);
        let code = quote! { axum::http::StatusCode::from_u16(#status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR) };
        let answer = match (schema, text) {
            (Some(_), _) => quote! { (#code, axum::Json(body)).into_response() },
            (None, true) => quote! {
                (#code, [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
            },
            (None, false) => quote! { #code.into_response() },
        };
        let has_body = schema.is_some() || *text;
        if headers.is_empty() {
            return if has_body {
                quote! { #name::#v(body) => #answer, }
            } else {
                quote! { #name::#v => #answer, }
            };
        }
        let body = has_body.then(|| quote! { body, });
        let fields = headers.iter().map(|h| format_ident!("{}", h.rust_name()));
        let inserts = headers.iter().map(insert_header);
        quote! {
            #name::#v { #body #(#fields,)* } => {
                let mut response = #answer;
                let headers = response.headers_mut();
                #(#inserts)*
                response
            }
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(Debug)]
        pub enum #name { #(#variants)* }

        impl IntoResponse for #name {
            fn into_response(self) -> axum::response::Response {
                match self { #(#arms)* }
            }
        }
    }
}

/// The Rust type of a response's body, if it has one.
fn body_type(response: &Response) -> Option<TokenStream> {
    match (&response.schema, response.text) {
        (Some(s), _) => {
            let t = format_ident!("{}", s);
            Some(quote! { types::#t })
        }
        (None, true) => Some(quote! { String }),
        (None, false) => None,
    }
}

/// A response header as a field of its variant (`Option` unless the spec requires it).
fn header_field(header: &ResponseHeader) -> TokenStream {
    let field = format_ident!("{}", header.rust_name());
    let doc = format!("The `{}` header.", header.name);
    let ty = match header.kind {
        HeaderKind::Integer => quote! { i64 },
        HeaderKind::String => quote! { axum::http::HeaderValue },
    };
    if header.required {
        quote! { #[doc = #doc] #field: #ty, }
    } else {
        quote! { #[doc = #doc] #field: Option<#ty>, }
    }
}

/// Sets a response header from its variant field (both header types convert without failing).
fn insert_header(header: &ResponseHeader) -> TokenStream {
    let field = format_ident!("{}", header.rust_name());
    let name = header.name.to_ascii_lowercase();
    let insert = |value: TokenStream| {
        quote! { headers.insert(axum::http::HeaderName::from_static(#name), axum::http::HeaderValue::from(#value)); }
    };
    if header.required {
        insert(quote! { #field })
    } else {
        let set = insert(quote! { value });
        quote! { if let Some(value) = #field { #set } }
    }
}

fn params(op: &Operation) -> Vec<TokenStream> {
    let mut params = Vec::new();
    if op.secured {
        params.push(quote! { principal: Self::Principal });
    }
    for p in &op.path_params {
        let n = format_ident!("{}", p.rust_name());
        params.push(quote! { #n: String });
    }
    if !op.query_params.is_empty() {
        let t = format_ident!("{}", op.type_name());
        params.push(quote! { query: queries::#t });
    }
    if let Some(body) = &op.body {
        let t = format_ident!("{}", body);
        params.push(quote! { body: types::#t });
    }
    params
}

fn trait_method(op: &Operation) -> TokenStream {
    let name = format_ident!("{}", op.fn_name());
    let response = format_ident!("{}", op.type_name());
    let params = params(op);
    let doc = format!(
        "`{}` — {} `{}`.{}",
        op.id,
        op.method,
        op.path,
        op.description.as_deref().map(|d| format!("\n\n{}", d.trim_end())).unwrap_or_default()
    );
    quote! {
        #[doc = #doc]
        fn #name(&self, #(#params),*) -> impl std::future::Future<Output = Result<responses::#response, Self::Error>> + Send;
    }
}

fn handler(op: &Operation) -> TokenStream {
    let name = format_ident!("{}", op.fn_name());
    let mut steps = Vec::new();
    let mut args = Vec::new();
    // Order of checks: body size (413), authentication (401, 403), the rate limit (429), then
    // input (400); the handler decides the rest (e.g. 404 for an unknown id). A request
    // turned away before the rate limit does not spend any of it.
    if op.body.is_some() {
        steps.push(read_body_step());
    }
    steps.extend(security_steps(op, &mut args));
    steps.extend(path_param_steps(op, &mut args));
    if !op.query_params.is_empty() {
        steps.push(query_step(op));
        args.push(quote! { query });
    }
    if let Some(body) = &op.body {
        steps.push(body_step(body, &op.single_as_list));
        args.push(quote! { body });
    }
    let path_extract = path_extract(op);
    let (parts_binding, body_binding) = request_bindings(op);
    quote! {
        pub async fn #name<A: Api>(State(api): State<Arc<A>>, request: Request) -> Response {
            let (#parts_binding, #body_binding) = request.into_parts();
            #path_extract
            #(#steps)*
            match api.#name(#(#args),*).await {
                Ok(response) => response.into_response(),
                Err(e) => e.into_response(),
            }
        }
    }
}

/// Reads the raw body within the limit (413 before anything else).
fn read_body_step() -> TokenStream {
    quote! {
        let bytes = match rt::body::read(body, api.body_limit()).await {
            Ok(bytes) => bytes,
            Err(rejection) => return api.reject(rejection),
        };
    }
}

/// Authentication (401, 403), then the rate limit (429), as the operation declares them.
fn security_steps(op: &Operation, args: &mut Vec<TokenStream>) -> Vec<TokenStream> {
    let variant = format_ident!("{}", op.type_name());
    let mut steps = Vec::new();
    if op.secured {
        steps.push(quote! {
            let principal = match api.authenticate(Operation::#variant, &parts.headers).await {
                Ok(principal) => principal,
                Err(rejection) => return api.reject(rejection),
            };
        });
        args.push(quote! { principal });
    }
    if op.rate_limited {
        steps.push(quote! {
            if let Err(rejection) = api.rate_limit(Operation::#variant, &principal) {
                return api.reject(rejection);
            }
        });
    }
    steps
}

/// One binding per path parameter; a missing one is no route of the contract.
fn path_param_steps(op: &Operation, args: &mut Vec<TokenStream>) -> Vec<TokenStream> {
    op.path_params
        .iter()
        .map(|p| {
            let n = format_ident!("{}", p.rust_name());
            let api_name = &p.name;
            args.push(quote! { #n });
            quote! {
                let Some(#n) = rt::params::path(&path_params, #api_name) else {
                    return api.reject(Rejection::NoRoute { method: parts.method.clone(), path: parts.uri.to_string() });
                };
            }
        })
        .collect()
}

/// Parses the query, converts and defaults it as the parameters' types say, validates it and
/// deserializes it into the operation's query struct.
fn query_step(op: &Operation) -> TokenStream {
    let t = format_ident!("{}", op.type_name());
    let validate = query_validator(op);
    let prepare = op.query_params.iter().map(|p| {
        let name = &p.name;
        let coerce = match p.kind {
            QueryKind::Integer => quote! { rt::query::to_number(&mut query, #name); },
            QueryKind::Boolean => quote! { rt::query::to_boolean(&mut query, #name); },
            QueryKind::StringArray => quote! { rt::query::to_list(&mut query, #name); },
            QueryKind::String | QueryKind::Component(_) | QueryKind::Enum(_) | QueryKind::DateTime => {
                quote! {}
            }
        };
        let default = p.default.as_ref().map(|d| {
            let value = json_literal(d);
            quote! { query.entry(#name).or_insert_with(|| #value); }
        });
        quote! { #coerce #default }
    });
    // The validator checks a date's shape; one that is no instant (a 31 February) fails here,
    // with the same message, before the handler sees it.
    let instants = op.query_params.iter().filter(|p| matches!(p.kind, QueryKind::DateTime)).map(|p| {
        let name = &p.name;
        let message = validators::date_time_message(name, &p.schema);
        quote! {
            if query.get(#name).and_then(|v| v.as_str()).is_some_and(|text| crate::rt::date::parse_instant(text).is_none()) {
                return api.reject(Rejection::Validation(vec![#message.to_owned()]));
            }
        }
    });
    quote! {
        let mut query = rt::query::parse(parts.uri.query());
        #(#prepare)*
        let query = serde_json::Value::Object(query);
        let errors = validate::#validate(&query);
        if !errors.is_empty() {
            return api.reject(Rejection::Validation(errors));
        }
        #(#instants)*
        let query: queries::#t = match serde_json::from_value(query) {
            Ok(query) => query,
            Err(e) => return api.reject(Rejection::Malformed(e.to_string())),
        };
    }
}

/// Decodes the JSON body, validates it and deserializes it into its component type.
fn body_step(body: &str, single_as_list: &[String]) -> TokenStream {
    let t = format_ident!("{}", body);
    let validate = validators::fn_name(body);
    let (binding, wrap) = if single_as_list.is_empty() {
        (quote! { value }, quote! {})
    } else {
        (quote! { mut value }, quote! { rt::body::single_as_list(&mut value, &[#(#single_as_list),*]); })
    };
    quote! {
        let #binding = match rt::body::json(&parts.headers, &bytes) {
            Ok(value) => value,
            Err(rejection) => return api.reject(rejection),
        };
        let errors = validate::#validate(&value);
        if !errors.is_empty() {
            return api.reject(Rejection::Validation(errors));
        }
        #wrap
        let body: types::#t = match serde_json::from_value(value) {
            Ok(body) => body,
            Err(e) => return api.reject(Rejection::Malformed(e.to_string())),
        };
    }
}

/// Extracts the raw path parameters, when the operation has any.
fn path_extract(op: &Operation) -> TokenStream {
    if op.path_params.is_empty() {
        return quote! {};
    }
    quote! {
        let path_params = {
            use axum::extract::FromRequestParts;
            match axum::extract::RawPathParams::from_request_parts(&mut parts, &()).await {
                Ok(params) => params,
                Err(_) => return api.reject(Rejection::NoRoute { method: parts.method.clone(), path: parts.uri.to_string() }),
            }
        };
    }
}

/// The bindings of the request's parts and body: unused ones are `_`-named so the generated
/// code compiles without warnings.
fn request_bindings(op: &Operation) -> (TokenStream, TokenStream) {
    let uses_parts =
        op.secured || !op.path_params.is_empty() || !op.query_params.is_empty() || op.body.is_some();
    let parts_binding = match (uses_parts, op.path_params.is_empty()) {
        (false, _) => quote! { _parts },
        (true, true) => quote! { parts },
        (true, false) => quote! { mut parts },
    };
    let body_binding = if op.body.is_some() {
        quote! { body }
    } else {
        quote! { _body }
    };
    (parts_binding, body_binding)
}

fn query_validator(op: &Operation) -> syn::Ident {
    format_ident!("{}_query", op.fn_name())
}

fn json_literal(value: &serde_json::Value) -> TokenStream {
    match value {
        serde_json::Value::Bool(b) => quote! { serde_json::Value::from(#b) },
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => quote! { serde_json::Value::from(#i) },
            None => {
                let f = n.as_f64().unwrap_or_default();
                quote! { serde_json::Value::from(#f) }
            }
        },
        serde_json::Value::String(s) => quote! { serde_json::Value::from(#s) },
        other => {
            let text = other.to_string();
            quote! { serde_json::from_str::<serde_json::Value>(#text).unwrap_or_default() }
        }
    }
}

fn query_struct(op: &Operation) -> TokenStream {
    let name = format_ident!("{}", op.type_name());
    let doc = format!("Query parameters of `{}`.", op.id);
    let fields = op.query_params.iter().map(|p| {
        let field = format_ident!("{}", p.rust_name());
        let api_name = &p.name;
        let ty = match &p.kind {
            QueryKind::String => quote! { String },
            QueryKind::Integer => quote! { i64 },
            QueryKind::Boolean => quote! { bool },
            QueryKind::Component(c) => {
                let c = format_ident!("{}", c);
                quote! { types::#c }
            }
            QueryKind::Enum(_) => {
                let e = query_enum_name(op, p);
                quote! { #e }
            }
            QueryKind::DateTime => quote! { chrono::DateTime<chrono::Utc> },
            QueryKind::StringArray => quote! { Vec<String> },
        };
        let doc = p.description.clone().unwrap_or_default();
        let required = p.required || p.default.is_some();
        match (&p.kind, required) {
            (QueryKind::DateTime, true) => quote! {
                #[doc = #doc] #[serde(rename = #api_name, deserialize_with = "crate::rt::date::deserialize")] pub #field: #ty,
            },
            (QueryKind::DateTime, false) => quote! {
                #[doc = #doc] #[serde(rename = #api_name, default, deserialize_with = "crate::rt::date::deserialize_option")] pub #field: Option<#ty>,
            },
            (_, true) => quote! { #[doc = #doc] #[serde(rename = #api_name)] pub #field: #ty, },
            (_, false) => quote! { #[doc = #doc] #[serde(rename = #api_name, default)] pub #field: Option<#ty>, },
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        pub struct #name { #(#fields)* }
    }
}

/// The Rust enum of an inline string-enum query parameter: operation and parameter name.
fn query_enum_name(op: &Operation, p: &QueryParam) -> syn::Ident {
    format_ident!("{}{}", op.type_name(), p.name.to_upper_camel_case())
}

/// One Rust enum per inline string-enum query parameter, so handlers match on variants
/// instead of comparing strings.
fn query_enums(op: &Operation) -> Vec<TokenStream> {
    op.query_params
        .iter()
        .filter_map(|p| match &p.kind {
            QueryKind::Enum(values) => Some((p, values)),
            _ => None,
        })
        .map(|(p, values)| {
            let name = query_enum_name(op, p);
            let doc = format!("The values of `{}`'s query parameter `{}`.", op.id, p.name);
            let variants: Vec<_> =
                values.iter().map(|v| format_ident!("{}", v.to_upper_camel_case())).collect();
            quote! {
                #[doc = #doc]
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
                pub enum #name { #( #[serde(rename = #values)] #variants, )* }

                impl #name {
                    /// Every value, in spec order.
                    pub const ALL: &'static [#name] = &[#(#name::#variants),*];

                    /// The value as written on the wire.
                    pub fn as_str(self) -> &'static str {
                        match self { #(#name::#variants => #values,)* }
                    }
                }

                impl std::fmt::Display for #name {
                    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(self.as_str())
                    }
                }
            }
        })
        .collect()
}

/// A callback as constants and the validator of its body (the component schema's, then its
/// `x-required-by` rules).
fn callback(spec: &OpenAPI, c: &Callback) -> Result<TokenStream, Error> {
    let module = format_ident!("{}", c.rust_name());
    let doc = format!("`{}` of `{}`: `{} {}`.", c.name, c.operation, c.method, c.expression);
    let (method, expression, schema) = (&c.method, &c.expression, &c.body);
    let required: Vec<&String> = c.headers.iter().filter(|(_, r)| *r).map(|(h, _)| h).collect();
    let validate = validators::fn_name(&c.body);
    let required_by = validators::required_by_calls(spec, &c.body)?;
    Ok(quote! {
        #[doc = #doc]
        pub mod #module {
            /// The HTTP method.
            pub const METHOD: &str = #method;
            /// The runtime expression of the URL the request goes to.
            pub const URL_EXPRESSION: &str = #expression;
            /// The component schema of the JSON body.
            pub const BODY_SCHEMA: &str = #schema;
            /// The headers every such request carries.
            pub const REQUIRED_HEADERS: &[&str] = &[#(#required),*];

            /// Checks a body against the contract: one message per broken rule, none when it conforms.
            pub fn validate_body(body: &serde_json::Value) -> Vec<String> {
                let mut errors = super::super::validate::#validate(body);
                if errors.is_empty() {
                    #(#required_by)*
                }
                errors
            }
        }
    })
}

fn router(api: &Api) -> TokenStream {
    let mut paths: Vec<(&str, Vec<&Operation>)> = Vec::new();
    for op in &api.operations {
        match paths.iter_mut().find(|(p, _)| *p == op.path) {
            Some((_, ops)) => ops.push(op),
            None => paths.push((&op.path, vec![op])),
        }
    }
    let routes = paths.iter().map(|(path, ops)| {
        let mut chain = ops.iter().map(|op| {
            let m = format_ident!("{}", op.method.to_lowercase());
            let h = format_ident!("{}", op.fn_name());
            quote! { #m(handlers::#h::<A>) }
        });
        let first = chain.next();
        let rest = chain.map(|c| quote! { .#c });
        quote! { .route(#path, axum::routing::#first #(#rest)*) }
    });
    quote! {
        /// The contract's routes; any other path or method is rejected with
        /// [`crate::rt::Rejection::NoRoute`] through [`Api::reject`].
        pub fn router<A: Api>(api: std::sync::Arc<A>) -> axum::Router {
            axum::Router::new()
                #(#routes)*
                .fallback(handlers::no_route::<A>)
                .method_not_allowed_fallback(handlers::no_route::<A>)
                .with_state(api)
        }
    }
}
