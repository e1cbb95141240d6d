//! Request validators derived from the schema constraints, with class-validator semantics:
//! every rule of a property is checked on its own against the raw JSON value and every
//! failing rule adds its message. Per property the rules run in a fixed order: format,
//! pattern, enum, lengths, bounds, item counts, then the type, then `x-not-empty`, then the
//! rules of each item (in the same order). An enum implies its type, so a property with an
//! enum gets no separate type rule (as a DTO with only `@IsEnum` would). A property that is
//! not required (or is nullable) is skipped when absent or null, like `@IsOptional`.
//!
//! Messages are class-validator's defaults, except a format's, which comes from the
//! property's `x-validation-message` (the contract's own text).
//!
//! `pattern` is `@Matches(/pattern/)`: an ECMAScript regular expression (as JSON Schema
//! means it), compiled here so that an invalid one is a build error, and at run time by the
//! same engine (regress).
//!
//! `x-not-empty: true` stands beside `minLength: 1` (which says the same to every other reader
//! of the contract) and replaces that rule with JSON Schema's own reading of it, reported with
//! `@IsNotEmpty`'s message: only an empty string breaks it, and on `items` only the items of an
//! actual array. So, unlike `@IsNotEmpty({ each: true })`, a `null` item or a value that is no
//! array adds nothing: those already have their messages ("must be a string", "must be an
//! array"), which stay exactly the reference's. It runs after the type rule (and the other item
//! rules): a DTO that gains the decorator above its existing ones reports it last.

use openapiv3::{OpenAPI, Schema, SchemaKind, StringFormat, Type, VariantOrUnknownOrEmpty};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::schema::{component_schema, resolve_boxed};
use crate::Error;

/// One rule: a boolean expression over `v: Option<&serde_json::Value>` and its message.
struct Rule {
    check: TokenStream,
    message: String,
}

/// The generated validator function name for a component schema.
pub fn fn_name(schema: &str) -> syn::Ident {
    format_ident!("{}", heck::ToSnakeCase::to_snake_case(schema))
}

/// `pub fn <schema>(body: &Value) -> Vec<String>` for an object component schema.
pub fn generate(spec: &OpenAPI, schema_name: &str) -> Result<TokenStream, Error> {
    let at = format!("components/schemas/{schema_name}");
    let schema = component_schema(spec, schema_name).map_err(|e| Error::invalid(&at, e))?;
    let object = match &schema.schema_kind {
        SchemaKind::Type(Type::Object(object)) => object,
        _ => return Err(Error::unsupported(&at, "a request body that is not an object")),
    };
    let mut properties = Vec::new();
    for (name, property) in &object.properties {
        let property =
            resolve_boxed(spec, property).map_err(|e| Error::invalid(format!("{at}.{name}"), e))?;
        properties.push(Property {
            name,
            schema: property,
            required: object.required.iter().any(|r| r == name),
        });
    }
    let doc =
        format!("Validates a raw `{schema_name}` body; one message per failing rule, in contract order.");
    validator(spec, &at, &fn_name(schema_name), &doc, &properties)
}

/// A validated value: a body property or a query parameter.
pub struct Property<'a> {
    pub name: &'a str,
    pub schema: &'a Schema,
    pub required: bool,
}

/// `pub fn <name>(body: &Value) -> Vec<String>` checking `properties` of a JSON object.
pub fn validator(
    spec: &OpenAPI,
    at: &str,
    name: &syn::Ident,
    doc: &str,
    properties: &[Property],
) -> Result<TokenStream, Error> {
    let mut blocks = Vec::new();
    for Property { name, schema: property, required } in properties {
        let at = format!("{at}.{name}");
        let rules = property_rules(spec, &at, name, property)?;
        let checks = rules.iter().map(|Rule { check, message }| {
            quote! { if !(#check) { errors.push(#message.to_owned()); } }
        });
        let block = if *required && !property.schema_data.nullable {
            quote! {{ let v = field(#name); #(#checks)* }}
        } else if *required {
            quote! { if !matches!(field(#name), Some(serde_json::Value::Null)) { let v = field(#name); #(#checks)* } }
        } else {
            quote! { if let Some(v) = field(#name).filter(|v| !v.is_null()) { let v = Some(v); #(#checks)* } }
        };
        blocks.push(block);
    }
    Ok(quote! {
        #[doc = #doc]
        pub fn #name(body: &serde_json::Value) -> Vec<String> {
            let mut errors = Vec::new();
            let field = |name: &str| body.as_object().and_then(|o| o.get(name));
            #(#blocks)*
            errors
        }
    })
}

fn property_rules(spec: &OpenAPI, at: &str, name: &str, schema: &Schema) -> Result<Vec<Rule>, Error> {
    let ty = match &schema.schema_kind {
        SchemaKind::Type(ty) => ty,
        _ => return Err(Error::unsupported(at, "a validated property without a plain `type`")),
    };
    let mut rules = scalar_rules(at, name, schema, ty)?;
    if not_empty(at, schema)? {
        rules.push(Rule {
            check: quote! { crate::rt::rules::not_empty_string(v) },
            message: format!("{name} should not be empty"),
        });
    }
    if let Type::Array(array) = ty {
        if let Some(n) = array.min_items {
            rules.push(Rule {
                check: quote! { crate::rt::rules::min_items(v, #n) },
                message: format!("{name} must contain at least {n} elements"),
            });
        }
        if let Some(n) = array.max_items {
            rules.push(Rule {
                check: quote! { crate::rt::rules::max_items(v, #n) },
                message: format!("{name} must contain no more than {n} elements"),
            });
        }
        if array.unique_items {
            return Err(Error::unsupported(at, "uniqueItems"));
        }
        rules.push(Rule {
            check: quote! { crate::rt::rules::is_array(v) },
            message: format!("{name} must be an array"),
        });
        let items = array.items.as_ref().ok_or_else(|| Error::invalid(at, "array without items"))?;
        let items = resolve_boxed(spec, items).map_err(|e| Error::invalid(at, e))?;
        let item_ty = match &items.schema_kind {
            SchemaKind::Type(Type::Array(_) | Type::Object(_)) => {
                return Err(Error::unsupported(at, "arrays of arrays or objects"))
            }
            SchemaKind::Type(ty) => ty,
            _ => return Err(Error::unsupported(at, "array items without a plain `type`")),
        };
        for Rule { check, message } in scalar_rules(at, name, items, item_ty)? {
            rules.push(Rule {
                check: quote! { crate::rt::rules::each(v, |v| #check) },
                message: format!("each value in {message}"),
            });
        }
        if not_empty(at, items)? {
            rules.push(Rule {
                check: quote! { crate::rt::rules::items(v, |v| crate::rt::rules::not_empty_string(v)) },
                message: format!("each value in {name} should not be empty"),
            });
        }
    }
    Ok(rules)
}

/// Rules of a non-array value (or of one array item); for an array, only what precedes the counts.
fn scalar_rules(at: &str, name: &str, schema: &Schema, ty: &Type) -> Result<Vec<Rule>, Error> {
    let custom = schema.schema_data.extensions.get("x-validation-message").and_then(|v| v.as_str());
    let mut rules = Vec::new();
    let mut has_enum = false;
    match ty {
        Type::String(s) => {
            match &s.format {
                VariantOrUnknownOrEmpty::Empty => {}
                VariantOrUnknownOrEmpty::Unknown(f) if f == "https-url" => rules.push(Rule {
                    check: quote! { crate::rt::rules::https_url(v) },
                    message: custom.map_or_else(|| format!("{name} must be a URL address"), str::to_owned),
                }),
                VariantOrUnknownOrEmpty::Item(StringFormat::DateTime) => rules.push(Rule {
                    check: quote! { crate::rt::rules::iso8601(v) },
                    message: custom.map_or_else(
                        || format!("{name} must be a valid ISO 8601 date string"),
                        str::to_owned,
                    ),
                }),
                other => return Err(Error::unsupported(at, format!("string format {other:?}"))),
            }
            if let Some(pattern) = &s.pattern {
                rules.push(pattern_rule(at, name, pattern)?);
            }
            if !s.enumeration.is_empty() {
                let values: Vec<String> = s.enumeration.iter().flatten().cloned().collect();
                let list = values.join(", ");
                rules.push(Rule {
                    check: quote! { crate::rt::rules::one_of(v, &[#(#values),*]) },
                    message: format!("{name} must be one of the following values: {list}"),
                });
                has_enum = true;
            }
            // `x-not-empty` (see `not_empty`) stands for `minLength: 1` in the validator.
            let not_empty = not_empty(at, schema)?;
            if let Some(n) = s.min_length.filter(|_| !not_empty) {
                rules.push(Rule {
                    check: quote! { crate::rt::rules::min_length(v, #n) },
                    message: format!("{name} must be longer than or equal to {n} characters"),
                });
            }
            if let Some(n) = s.max_length {
                rules.push(Rule {
                    check: quote! { crate::rt::rules::max_length(v, #n) },
                    message: format!("{name} must be shorter than or equal to {n} characters"),
                });
            }
            if !has_enum {
                rules.push(Rule {
                    check: quote! { crate::rt::rules::is_string(v) },
                    message: format!("{name} must be a string"),
                });
            }
        }
        Type::Integer(i) => {
            if !i.enumeration.is_empty()
                || i.multiple_of.is_some()
                || i.exclusive_minimum
                || i.exclusive_maximum
            {
                return Err(Error::unsupported(at, "integer enum, multipleOf or exclusive bounds"));
            }
            if let Some(n) = i.minimum {
                rules.push(Rule {
                    check: quote! { crate::rt::rules::minimum(v, #n as f64) },
                    message: format!("{name} must not be less than {n}"),
                });
            }
            if let Some(n) = i.maximum {
                rules.push(Rule {
                    check: quote! { crate::rt::rules::maximum(v, #n as f64) },
                    message: format!("{name} must not be greater than {n}"),
                });
            }
            rules.push(Rule {
                check: quote! { crate::rt::rules::is_integer(v) },
                message: format!("{name} must be an integer number"),
            });
        }
        Type::Boolean(_) => rules.push(Rule {
            check: quote! { crate::rt::rules::is_boolean(v) },
            message: format!("{name} must be a boolean value"),
        }),
        Type::Array(_) => {}
        Type::Number(_) => return Err(Error::unsupported(at, "number properties (use integer)")),
        // A free-form object (`@IsObject`); its fields are the handler's to check.
        Type::Object(o) if o.properties.is_empty() => rules.push(Rule {
            check: quote! { crate::rt::rules::is_object(v) },
            message: format!("{name} must be an object"),
        }),
        Type::Object(_) => return Err(Error::unsupported(at, "nested objects with properties")),
    }
    Ok(rules)
}

/// The vendor extension for class-validator's `@IsNotEmpty()`.
const NOT_EMPTY: &str = "x-not-empty";

/// Whether `schema` carries `x-not-empty: true`: only on a string schema, and only beside
/// `minLength: 1`, so that readers who do not know the extension are told the same.
fn not_empty(at: &str, schema: &Schema) -> Result<bool, Error> {
    match schema.schema_data.extensions.get(NOT_EMPTY) {
        None | Some(serde_json::Value::Bool(false)) => return Ok(false),
        Some(serde_json::Value::Bool(true)) => {}
        Some(other) => {
            return Err(Error::invalid(at, format!("{NOT_EMPTY} must be true or false, not {other}")))
        }
    }
    match &schema.schema_kind {
        SchemaKind::Type(Type::String(s)) if s.min_length == Some(1) => Ok(true),
        SchemaKind::Type(Type::String(_)) => {
            Err(Error::invalid(at, format!("{NOT_EMPTY} needs minLength: 1 (what it means in JSON Schema)")))
        }
        _ => Err(Error::unsupported(at, format!("{NOT_EMPTY} on a value that is not a string"))),
    }
}

/// `@Matches(/pattern/)`: class-validator's message shows the expression as a JavaScript
/// literal. The expression is compiled now, so an invalid one stops the build.
fn pattern_rule(at: &str, name: &str, pattern: &str) -> Result<Rule, Error> {
    regress::Regex::new(pattern).map_err(|e| Error::invalid(at, format!("pattern {pattern:?}: {e}")))?;
    Ok(Rule {
        check: quote! {{
            static PATTERN: std::sync::LazyLock<Option<crate::rt::rules::Regex>> =
                std::sync::LazyLock::new(|| crate::rt::rules::Regex::new(#pattern).ok());
            crate::rt::rules::matches(v, PATTERN.as_ref())
        }},
        message: format!("{name} must match /{pattern}/ regular expression"),
    })
}
