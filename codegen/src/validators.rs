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
    let mut tokens = validator(spec, &at, &fn_name(schema_name), &doc, &properties)?;
    for property in &properties {
        if let Some(by) = required_by(spec, &at, schema_name, object, property)? {
            tokens.extend(by);
        }
    }
    Ok(tokens)
}

/// The vendor extension that makes a free-form object property's fields depend on a sibling:
/// `x-required-by: <sibling>` on the object, whose (enum) schema maps each of its values to the
/// string fields the object must carry, in `x-required-data`.
const REQUIRED_BY: &str = "x-required-by";
/// On a string enum: `value: [field, …]` for every value (see [`REQUIRED_BY`]).
const REQUIRED_DATA: &str = "x-required-data";

/// The generated function name for the `x-required-by` rule of `schema.property`.
pub fn required_by_fn_name(schema: &str, property: &str) -> syn::Ident {
    use heck::ToSnakeCase;
    format_ident!("{}_{}", schema.to_snake_case(), property.to_snake_case())
}

/// `pub fn <schema>_<property>(<sibling>: &str, <property>: &Map) -> Vec<String>` for a property
/// carrying `x-required-by`: class-validator's nested `<property>.<field> must be a string`, one
/// per missing or non-string field, in the order `x-required-data` lists them.
fn required_by(
    spec: &OpenAPI,
    at: &str,
    schema_name: &str,
    object: &openapiv3::ObjectType,
    property: &Property,
) -> Result<Option<TokenStream>, Error> {
    let Some(by) = property.schema.schema_data.extensions.get(REQUIRED_BY) else {
        return Ok(None);
    };
    let at = format!("{at}.{}", property.name);
    let by =
        by.as_str().ok_or_else(|| Error::invalid(&at, format!("{REQUIRED_BY} must be a property name")))?;
    match &property.schema.schema_kind {
        SchemaKind::Type(Type::Object(o)) if o.properties.is_empty() => {}
        _ => {
            return Err(Error::unsupported(
                &at,
                format!("{REQUIRED_BY} on a value that is not a free-form object"),
            ))
        }
    }
    let sibling = object
        .properties
        .get(by)
        .ok_or_else(|| Error::invalid(&at, format!("{REQUIRED_BY}: no sibling property {by}")))?;
    if !object.required.iter().any(|r| r == by) {
        return Err(Error::invalid(&at, format!("{REQUIRED_BY}: {by} must be required")));
    }
    let sibling = resolve_boxed(spec, sibling).map_err(|e| Error::invalid(&at, e))?;
    let values: Vec<String> = match &sibling.schema_kind {
        SchemaKind::Type(Type::String(s)) if !s.enumeration.is_empty() => {
            s.enumeration.iter().flatten().cloned().collect()
        }
        _ => return Err(Error::unsupported(&at, format!("{REQUIRED_BY}: {by} is not a string enum"))),
    };
    let map = sibling.schema_data.extensions.get(REQUIRED_DATA).ok_or_else(|| {
        Error::invalid(&at, format!("{REQUIRED_BY}: the schema of {by} has no {REQUIRED_DATA}"))
    })?;
    let map: indexmap::IndexMap<String, Vec<String>> = serde_json::from_value(map.clone()).map_err(|_| {
        Error::invalid(&at, format!("{REQUIRED_DATA} of {by} must map each value to a list of field names"))
    })?;
    // Exhaustive both ways, so a value added to the enum cannot go without its payload.
    if let Some(value) = values.iter().find(|v| !map.contains_key(*v)) {
        return Err(Error::invalid(&at, format!("{REQUIRED_DATA} of {by} does not list {value}")));
    }
    if let Some(value) = map.keys().find(|k| !values.contains(k)) {
        return Err(Error::invalid(
            &at,
            format!("{REQUIRED_DATA} of {by} lists {value}, not one of its values"),
        ));
    }
    let name = property.name;
    let arms = map.iter().map(|(value, fields)| {
        let checks = fields.iter().map(|field| {
            let message = format!("{name}.{field} must be a string");
            quote! {
                if !crate::rt::rules::is_string(fields.get(#field)) {
                    errors.push(#message.to_owned());
                }
            }
        });
        quote! { #value => { #(#checks)* } }
    });
    let function = required_by_fn_name(schema_name, name);
    let by_ident = format_ident!("{}", heck::ToSnakeCase::to_snake_case(by));
    let doc = format!(
        "`{REQUIRED_BY}` of `{schema_name}.{name}`: the string fields `{name}` must carry for the `{by}` \
         it comes with (`{REQUIRED_DATA}`); one message per missing one. Run after [`{}`], which \
         checks `{by}` and `{name}` themselves.",
        fn_name(schema_name)
    );
    Ok(Some(quote! {
        #[doc = #doc]
        pub fn #function(#by_ident: &str, fields: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
            let mut errors = Vec::new();
            match #by_ident {
                #(#arms)*
                _ => {}
            }
            errors
        }
    }))
}

/// Calls of the `x-required-by` functions of `schema_name` over a raw body `body` (which its
/// validator already passed), adding to `errors`; for code one module below `validate`'s sibling.
pub fn required_by_calls(spec: &OpenAPI, schema_name: &str) -> Result<Vec<TokenStream>, Error> {
    let at = format!("components/schemas/{schema_name}");
    let schema = component_schema(spec, schema_name).map_err(|e| Error::invalid(&at, e))?;
    let SchemaKind::Type(Type::Object(object)) = &schema.schema_kind else {
        return Ok(Vec::new());
    };
    let mut calls = Vec::new();
    for (name, property) in &object.properties {
        let property =
            resolve_boxed(spec, property).map_err(|e| Error::invalid(format!("{at}.{name}"), e))?;
        let Some(by) = property.schema_data.extensions.get(REQUIRED_BY).and_then(|v| v.as_str()) else {
            continue;
        };
        let function = required_by_fn_name(schema_name, name);
        calls.push(quote! {
            if let (Some(by), Some(fields)) = (
                body.get(#by).and_then(|v| v.as_str()),
                body.get(#name).and_then(|v| v.as_object()),
            ) {
                errors.extend(super::super::validate::#function(by, fields));
            }
        });
    }
    Ok(calls)
}

/// The message of the date-time rule of `name`: also what a date of the right shape that is no
/// instant (a 31 February) is answered with when it is parsed.
pub fn date_time_message(name: &str, schema: &Schema) -> String {
    schema
        .schema_data
        .extensions
        .get("x-validation-message")
        .and_then(|v| v.as_str())
        .map_or_else(|| format!("{name} must be a valid ISO 8601 date string"), str::to_owned)
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
        let required_if = required_if(at.as_str(), property, properties)?;
        if required_if.is_some() && *required {
            return Err(Error::invalid(&at, format!("{REQUIRED_IF} on a property that is always required")));
        }
        let block = if let Some((sibling, values)) = required_if {
            // Required (null included) while the sibling holds one of `values`; optional otherwise.
            quote! {
                if matches!(field(#sibling).and_then(|v| v.as_str()), Some(#(#values)|*))
                    || field(#name).is_some_and(|v| !v.is_null())
                {
                    let v = field(#name);
                    #(#checks)*
                }
            }
        } else if *required && !property.schema_data.nullable {
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

/// The vendor extension that makes an optional property required for some values of a sibling:
/// `x-required-if: {<sibling>: [value, …]}` (OpenAPI 3.0 could only say it by splitting the
/// schema into a `oneOf` of variants). While the sibling holds one of the values, the property's
/// rules run as for a required property, so an absent or null one gets their messages.
const REQUIRED_IF: &str = "x-required-if";

/// `(sibling, values)` of `property`'s `x-required-if`, checked against its siblings: only on
/// an optional property, naming a sibling string enum, with values of that enum.
fn required_if(
    at: &str,
    property: &Schema,
    siblings: &[Property],
) -> Result<Option<(String, Vec<String>)>, Error> {
    let Some(extension) = property.schema_data.extensions.get(REQUIRED_IF) else {
        return Ok(None);
    };
    let map: indexmap::IndexMap<String, Vec<String>> =
        serde_json::from_value(extension.clone()).map_err(|_| {
            Error::invalid(at, format!("{REQUIRED_IF} must map one sibling to a list of its values"))
        })?;
    let mut entries = map.into_iter();
    let (Some((sibling, values)), None) = (entries.next(), entries.next()) else {
        return Err(Error::invalid(at, format!("{REQUIRED_IF} must name exactly one sibling")));
    };
    let enumeration = siblings
        .iter()
        .find(|p| p.name == sibling)
        .and_then(|p| match &p.schema.schema_kind {
            SchemaKind::Type(Type::String(s)) if !s.enumeration.is_empty() => {
                Some(s.enumeration.iter().flatten().cloned().collect::<Vec<String>>())
            }
            _ => None,
        })
        .ok_or_else(|| {
            Error::invalid(at, format!("{REQUIRED_IF}: {sibling} is not a sibling string enum"))
        })?;
    if let Some(value) = values.iter().find(|v| !enumeration.contains(v)) {
        return Err(Error::invalid(at, format!("{REQUIRED_IF}: {value} is not a value of {sibling}")));
    }
    Ok(Some((sibling, values)))
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
        if !single_as_list(at, schema)? {
            rules.push(Rule {
                check: quote! { crate::rt::rules::is_array(v) },
                message: format!("{name} must be an array"),
            });
        }
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
                    message: date_time_message(name, schema),
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

/// The vendor extension for a list that also takes a lone value, as class-validator's
/// `@IsString({ each: true })` without `@IsArray()` does: on an array property, it drops the
/// "must be an array" rule (the item rules then check a lone value as one item), and the
/// generated handler wraps a lone value into a one-element list before typing the body.
const SINGLE_AS_LIST: &str = "x-single-as-list";

/// Whether `schema` carries `x-single-as-list: true` (only on arrays).
fn single_as_list(at: &str, schema: &Schema) -> Result<bool, Error> {
    match schema.schema_data.extensions.get(SINGLE_AS_LIST) {
        None | Some(serde_json::Value::Bool(false)) => Ok(false),
        Some(serde_json::Value::Bool(true)) => match &schema.schema_kind {
            SchemaKind::Type(Type::Array(a)) if a.min_items.is_none() && a.max_items.is_none() => Ok(true),
            _ => Err(Error::unsupported(
                at,
                format!("{SINGLE_AS_LIST} on anything but an array without item counts"),
            )),
        },
        Some(other) => {
            Err(Error::invalid(at, format!("{SINGLE_AS_LIST} must be true or false, not {other}")))
        }
    }
}

/// The properties of the object schema `schema_name` marked `x-single-as-list`, in spec order.
pub fn single_as_list_properties(spec: &OpenAPI, schema_name: &str) -> Result<Vec<String>, Error> {
    let at = format!("components/schemas/{schema_name}");
    let schema = component_schema(spec, schema_name).map_err(|e| Error::invalid(&at, e))?;
    let SchemaKind::Type(Type::Object(object)) = &schema.schema_kind else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for (name, property) in &object.properties {
        let property =
            resolve_boxed(spec, property).map_err(|e| Error::invalid(format!("{at}.{name}"), e))?;
        if single_as_list(&format!("{at}.{name}"), property)? {
            names.push(name.clone());
        }
    }
    Ok(names)
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
