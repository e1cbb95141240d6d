//! The client side: progenitor, after a pre-pass that gives every operation a single error type.
//!
//! progenitor 0.15 accepts exactly one success and one error type per operation. The checked-in
//! spec keeps a distinct schema per error status (that is what the documentation shows), so
//! here, in memory only, each operation's error schemas are merged into one `oneOf`
//! (most required fields first, so the most specific shape is tried first).

use std::panic::{catch_unwind, AssertUnwindSafe};

use heck::ToUpperCamelCase;
use indexmap::IndexMap;
use openapiv3::{
    MediaType, OpenAPI, Operation, PathItem, ReferenceOr, Response, Schema, SchemaData, SchemaKind,
    StatusCode,
};
use proc_macro2::TokenStream;
use progenitor_impl::{GenerationSettings, Generator, InterfaceStyle, TagStyle};

use crate::schema::{component_name, component_schema, resolve_ref};
use crate::Error;

pub fn generate(spec: &OpenAPI) -> Result<TokenStream, Error> {
    let spec = merge_error_schemas(spec)?;
    let mut settings = GenerationSettings::new();
    settings.with_interface(InterfaceStyle::Positional).with_tag(TagStyle::Merged);
    // progenitor reports some unsupported constructs by panicking; make them build errors.
    let result = catch_unwind(AssertUnwindSafe(|| Generator::new(&settings).generate_tokens(&spec)));
    let contract = contract_constants(&spec)?;
    match result {
        Ok(Ok(mut tokens)) => {
            tokens.extend(contract);
            Ok(tokens)
        }
        Ok(Err(e)) => Err(Error::Client(e.to_string())),
        Err(panic) => Err(Error::Client(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "progenitor panicked".to_owned()),
        )),
    }
}

/// `pub mod contract`: the values of the spec's string enums and the item counts of its arrays
/// as constants, so that a caller checking input before sending it (the CLI) has no copy of its own.
fn contract_constants(spec: &OpenAPI) -> Result<TokenStream, Error> {
    use heck::ToShoutySnakeCase;
    use quote::{format_ident, quote};
    let mut items = Vec::new();
    let Some(components) = &spec.components else {
        return Ok(quote! { pub mod contract {} });
    };
    for (name, schema) in &components.schemas {
        let schema = resolve_ref(spec, schema, "schemas")
            .map_err(|e| Error::invalid(format!("components/schemas/{name}"), e))?;
        match &schema.schema_kind {
            SchemaKind::Type(openapiv3::Type::String(s)) if !s.enumeration.is_empty() => {
                let values: Vec<&String> = s.enumeration.iter().flatten().collect();
                let n = values.len();
                let constant = format_ident!("{}", name.to_shouty_snake_case());
                let doc = format!("Every value of `{name}`, in spec order, as written on the wire.");
                items.push(quote! { #[doc = #doc] pub const #constant: [&str; #n] = [#(#values),*]; });
            }
            SchemaKind::Type(openapiv3::Type::Object(object)) => {
                for (property, value) in &object.properties {
                    let Some(array) = value.as_item().and_then(|p| match &p.schema_kind {
                        SchemaKind::Type(openapiv3::Type::Array(a)) => Some(a),
                        _ => None,
                    }) else {
                        continue;
                    };
                    for (bound, keyword) in [(array.min_items, "MIN_ITEMS"), (array.max_items, "MAX_ITEMS")] {
                        let Some(bound) = bound else { continue };
                        let constant = format_ident!(
                            "{}_{}_{keyword}",
                            name.to_shouty_snake_case(),
                            property.to_shouty_snake_case()
                        );
                        let doc = format!(
                            "`{}` of `{name}.{property}`.",
                            if keyword == "MIN_ITEMS" { "minItems" } else { "maxItems" }
                        );
                        items.push(quote! { #[doc = #doc] pub const #constant: usize = #bound; });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(quote! {
        /// Values and limits of the contract's schemas, as constants.
        pub mod contract {
            #(#items)*
        }
    })
}

/// Pins each error schema's `statusCode` to the one status it is used for, so the untagged
/// `oneOf` decodes a body into the variant of its own status rather than the first that fits.
fn pin_status_codes(spec: &OpenAPI, merged: &mut OpenAPI) -> Result<(), Error> {
    let mut statuses: IndexMap<String, Vec<u16>> = IndexMap::new();
    for (path, item) in spec.paths.iter() {
        let Some(item) = item.as_item() else { continue };
        for (method, op) in item.iter() {
            for (status, response) in &op.responses.responses {
                let StatusCode::Code(code) = status else { continue };
                if *code < 400 {
                    continue;
                }
                let response = resolve_ref(spec, response, "responses")
                    .map_err(|e| Error::invalid(format!("{method} {path}"), e))?;
                if let Some(name) = response
                    .content
                    .get("application/json")
                    .and_then(|m| m.schema.as_ref())
                    .and_then(component_name)
                {
                    let codes = statuses.entry(name).or_default();
                    if !codes.contains(code) {
                        codes.push(*code);
                    }
                }
            }
        }
    }
    let Some(components) = merged.components.as_mut() else { return Ok(()) };
    for (name, codes) in statuses {
        let [code] = codes[..] else { continue };
        let Some(ReferenceOr::Item(schema)) = components.schemas.get_mut(&name) else { continue };
        let SchemaKind::Type(openapiv3::Type::Object(object)) = &mut schema.schema_kind else { continue };
        if let Some(ReferenceOr::Item(property)) = object.properties.get_mut("statusCode") {
            if let SchemaKind::Type(openapiv3::Type::Integer(integer)) = &mut property.schema_kind {
                integer.enumeration = vec![Some(i64::from(code))];
            }
        }
    }
    Ok(())
}

fn merge_error_schemas(spec: &OpenAPI) -> Result<OpenAPI, Error> {
    let mut merged = spec.clone();
    pin_status_codes(spec, &mut merged)?;
    let mut new_schemas: Vec<(String, Schema)> = Vec::new();
    for (path, item) in merged.paths.paths.iter_mut() {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (method, op) in operations_mut(item) {
            let at = format!("{method} {path}");
            let mut names: Vec<String> = Vec::new();
            let mut descriptions = Vec::new();
            for (status, response) in &op.responses.responses {
                if !is_error(status) {
                    continue;
                }
                let resolved =
                    resolve_ref(spec, response, "responses").map_err(|e| Error::invalid(&at, e))?;
                descriptions.push(resolved.description.clone());
                if let Some(name) = resolved
                    .content
                    .get("application/json")
                    .and_then(|m| m.schema.as_ref())
                    .and_then(component_name)
                {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            if names.len() < 2 {
                continue;
            }
            names.sort_by_key(|n| std::cmp::Reverse(required_count(spec, n)));
            let op_id = op.operation_id.clone().unwrap_or_else(|| at.clone());
            let merged_name = format!("{}Error", op_id.to_upper_camel_case());
            new_schemas.push((
                merged_name.clone(),
                Schema {
                    schema_data: SchemaData {
                        description: Some(format!("Any error body of `{op_id}`.")),
                        ..Default::default()
                    },
                    schema_kind: SchemaKind::OneOf {
                        one_of: names
                            .iter()
                            .map(|n| ReferenceOr::ref_(&format!("#/components/schemas/{n}")))
                            .collect(),
                    },
                },
            ));
            for (status, response) in op.responses.responses.iter_mut() {
                if !is_error(status) {
                    continue;
                }
                let description = resolve_ref(spec, response, "responses")
                    .map_err(|e| Error::invalid(&at, e))?
                    .description
                    .clone();
                let mut content = IndexMap::new();
                content.insert(
                    "application/json".to_owned(),
                    MediaType {
                        schema: Some(ReferenceOr::ref_(&format!("#/components/schemas/{merged_name}"))),
                        ..Default::default()
                    },
                );
                *response = ReferenceOr::Item(Response { description, content, ..Default::default() });
            }
        }
    }
    if let Some(components) = merged.components.as_mut() {
        for (name, schema) in new_schemas {
            if components.schemas.contains_key(&name) {
                return Err(Error::invalid(
                    format!("components/schemas/{name}"),
                    "name is reserved for a merged error schema",
                ));
            }
            components.schemas.insert(name, ReferenceOr::Item(schema));
        }
    }
    Ok(merged)
}

fn is_error(status: &StatusCode) -> bool {
    match status {
        StatusCode::Code(code) => *code >= 400,
        StatusCode::Range(range) => *range >= 4,
    }
}

fn required_count(spec: &OpenAPI, name: &str) -> usize {
    component_schema(spec, name)
        .ok()
        .and_then(|s| match &s.schema_kind {
            SchemaKind::Type(openapiv3::Type::Object(o)) => Some(o.required.len()),
            _ => None,
        })
        .unwrap_or(0)
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}
