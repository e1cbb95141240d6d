//! Reference resolution and the conversion of OpenAPI 3.0 schemas to the JSON Schema typify reads.

use indexmap::IndexMap;
use openapiv3::{OpenAPI, ReferenceOr};
use serde_json::Value;

use crate::Error;

/// Formats whose Rust type typify knows without extra crates; every other format is a
/// validation rule (see `validators`) and the value stays a `String`.
const TYPED_FORMATS: &[&str] = &["int32", "int64", "float", "double"];

/// Keywords of OpenAPI 3.0 that are not JSON Schema (or that only document).
const DOC_ONLY: &[&str] = &[
    "nullable",
    "example",
    "examples",
    "discriminator",
    "xml",
    "externalDocs",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Resolves `#/components/<section>/<name>` (one level; chains are followed).
pub fn resolve_ref<'a, T: Component>(
    spec: &'a OpenAPI,
    value: &'a ReferenceOr<T>,
    section: &str,
) -> Result<&'a T, String> {
    let mut current = value;
    for _ in 0..8 {
        match current {
            ReferenceOr::Item(item) => return Ok(item),
            ReferenceOr::Reference { reference } => {
                let name = reference
                    .strip_prefix(&format!("#/components/{section}/"))
                    .ok_or_else(|| format!("$ref {reference} is not in #/components/{section}"))?;
                current = spec
                    .components
                    .as_ref()
                    .and_then(|c| T::section(c).get(name))
                    .ok_or_else(|| format!("$ref {reference} points nowhere"))?;
            }
        }
    }
    Err("$ref chain too long".to_owned())
}

/// Resolves a boxed schema reference (how openapiv3 stores nested schemas).
pub fn resolve_boxed<'a>(
    spec: &'a OpenAPI,
    value: &'a ReferenceOr<Box<openapiv3::Schema>>,
) -> Result<&'a openapiv3::Schema, String> {
    match value {
        ReferenceOr::Item(item) => Ok(item),
        ReferenceOr::Reference { reference } => match reference.strip_prefix("#/components/schemas/") {
            Some(name) => component_schema(spec, name),
            None => Err(format!("$ref {reference} is not in #/components/schemas")),
        },
    }
}

/// The component schema called `name`, references followed.
pub fn component_schema<'a>(spec: &'a OpenAPI, name: &str) -> Result<&'a openapiv3::Schema, String> {
    let schema = spec
        .components
        .as_ref()
        .and_then(|c| c.schemas.get(name))
        .ok_or_else(|| format!("no schema {name} in #/components/schemas"))?;
    resolve_ref(spec, schema, "schemas")
}

/// The component name a `$ref: '#/components/schemas/Name'` points to.
pub fn component_name<T>(value: &ReferenceOr<T>) -> Option<String> {
    match value {
        ReferenceOr::Reference { reference } => {
            reference.strip_prefix("#/components/schemas/").map(str::to_owned)
        }
        ReferenceOr::Item(_) => None,
    }
}

pub trait Component: Sized {
    fn section(c: &openapiv3::Components) -> &IndexMap<String, ReferenceOr<Self>>;
}

macro_rules! component {
    ($ty:ty, $field:ident) => {
        impl Component for $ty {
            fn section(c: &openapiv3::Components) -> &IndexMap<String, ReferenceOr<Self>> {
                &c.$field
            }
        }
    };
}
component!(openapiv3::Schema, schemas);
component!(openapiv3::Parameter, parameters);
component!(openapiv3::Response, responses);
component!(openapiv3::RequestBody, request_bodies);
component!(openapiv3::SecurityScheme, security_schemes);
component!(openapiv3::Header, headers);

/// The component schemas as schemars schemas for typify.
pub fn typify_schemas(spec: &OpenAPI) -> Result<Vec<(String, schemars::schema::Schema)>, Error> {
    let Some(components) = &spec.components else {
        return Ok(Vec::new());
    };
    components
        .schemas
        .iter()
        .map(|(name, schema)| {
            let mut json =
                serde_json::to_value(schema).map_err(|e| Error::Internal(format!("schema {name}: {e}")))?;
            to_json_schema(&mut json);
            let schema =
                serde_json::from_value(json).map_err(|e| Error::Types(format!("schema {name}: {e}")))?;
            Ok((name.clone(), schema))
        })
        .collect()
}

fn to_json_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // JSON Schema spells OpenAPI 3.0's `nullable` as a second type.
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(ty)) = map.get("type") {
                    let ty = ty.clone();
                    map.insert("type".to_owned(), serde_json::json!([ty, "null"]));
                }
            }
            map.retain(|k, _| !k.starts_with("x-") && !DOC_ONLY.contains(&k.as_str()));
            if let Some(Value::String(format)) = map.get("format") {
                if !TYPED_FORMATS.contains(&format.as_str()) {
                    map.remove("format");
                }
            }
            for (key, child) in map.iter_mut() {
                // `properties` maps names to schemas: a property may be called `example`.
                if key == "properties" {
                    if let Value::Object(props) = child {
                        props.values_mut().for_each(to_json_schema);
                    }
                } else {
                    to_json_schema(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        _ => {}
    }
}
