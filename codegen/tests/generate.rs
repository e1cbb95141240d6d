//! The generator's own tests: the contract's constraints drive the generated validators,
//! and what the generator cannot honour is a build error naming the place.

use webhooks_codegen::{generate, Error};

const SPEC: &str = include_str!("../../openapi.yaml");

/// The `validate` module of the generated server code.
fn validators(server: &str) -> &str {
    let start = server.find("pub mod validate {").expect("validate module");
    let end = server[start..].find("\npub trait Api").expect("Api trait after validate") + start;
    &server[start..end]
}

/// The `secrets` of `CreateUserWebhookRequest`, up to its items.
const CREATE_SECRETS: &str = "maxItems: 2\n          items:\n            type: string\n            minLength: 1\n            x-not-empty: true\n          description: |-\n            The secrets that will be used to verify the authenticity of the webhook.\n            If no value";

/// The `id` of `PublishEventRequest`, its constraints.
const EVENT_ID: &str = "minLength: 1\n          maxLength: 200\n          pattern: '^[\\x21-\\x7E]*$'\n";

/// The body of the generated validator function `name`.
fn validator<'a>(server: &'a str, name: &str) -> &'a str {
    let validators = validators(server);
    let start = validators.find(&format!("pub fn {name}(")).unwrap_or_else(|| panic!("no validator {name}"));
    let end = validators[start..].find("\n    }\n").expect("end of the function") + start;
    &validators[start..end]
}

/// The messages a validator can add, in the order it checks them.
fn messages(validator: &str) -> Vec<String> {
    validator.split(".push(").skip(1).map(|rest| string_literal(rest.trim_start())).collect()
}

/// The value of the Rust string literal `source` starts with (escapes `\\` and `\"` only).
fn string_literal(source: &str) -> String {
    let mut chars = source.strip_prefix('"').expect("a string literal").chars();
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return value,
            '\\' => value.push(chars.next().expect("an escaped character")),
            c => value.push(c),
        }
    }
    panic!("unterminated string literal")
}

fn with(old: &str, new: &str) -> String {
    assert!(SPEC.contains(old), "the spec no longer contains {old:?}");
    SPEC.replacen(old, new, 1)
}

#[test]
fn the_checked_in_spec_generates() {
    let generated = generate(SPEC).expect("openapi.yaml generates");
    for operation in [
        "create_user_webhook",
        "list_user_webhooks",
        "get_user_webhook",
        "update_user_webhook",
        "delete_user_webhook",
    ] {
        assert!(generated.server.contains(&format!("fn {operation}(")), "{operation} missing from the trait");
        assert!(
            generated.client.contains(&format!("pub async fn {operation}")),
            "{operation} missing from the client"
        );
    }
}

#[test]
fn a_constraint_changed_in_the_spec_changes_the_validator_and_its_message() {
    let original = generate(SPEC).unwrap();
    // maxItems of `secrets` in CreateUserWebhookRequest, 2 -> 3.
    let changed =
        generate(&with(CREATE_SECRETS, &CREATE_SECRETS.replace("maxItems: 2", "maxItems: 3"))).unwrap();
    let before = validators(&original.server);
    let after = validators(&changed.server);
    assert!(before.contains("secrets must contain no more than 2 elements"));
    assert!(after.contains("secrets must contain no more than 3 elements"));
    assert!(after.contains("max_items(v, 3usize)"));
    // Only the create body changed; the other bodies still allow 2.
    assert_eq!(
        after.matches("no more than 2 elements").count(),
        before.matches("no more than 2 elements").count() - 1
    );
    insta::assert_snapshot!("validators_with_max_items_3", after);
}

#[test]
fn x_not_empty_is_a_not_empty_rule_after_the_other_rules_of_each_item() {
    let original = generate(SPEC).unwrap();
    let secrets_messages = |server: &str, name: &str| -> Vec<String> {
        messages(validator(server, name)).into_iter().filter(|m| m.contains("secrets")).collect()
    };
    let expected = [
        "secrets must contain no more than 2 elements",
        "secrets must be an array",
        "each value in secrets must be a string",
        "each value in secrets should not be empty",
    ];
    assert_eq!(secrets_messages(&original.server, "create_user_webhook_request"), expected);
    assert_eq!(secrets_messages(&original.server, "update_user_webhook_request"), expected);
    assert!(validator(&original.server, "create_user_webhook_request")
        .contains("crate::rt::rules::items(v, |v| crate::rt::rules::not_empty_string(v))"));

    // Without the extension, `minLength: 1` is class-validator's `@MinLength(1)`, in its place.
    let plain =
        generate(&with(CREATE_SECRETS, &CREATE_SECRETS.replace("            x-not-empty: true\n", "")))
            .unwrap();
    assert_eq!(
        secrets_messages(&plain.server, "create_user_webhook_request"),
        [
            "secrets must contain no more than 2 elements",
            "secrets must be an array",
            "each value in secrets must be longer than or equal to 1 characters",
            "each value in secrets must be a string",
        ]
    );
    // The update body keeps its own rule.
    assert_eq!(secrets_messages(&plain.server, "update_user_webhook_request"), expected);

    // On a property of its own (not an array's items), the message has no `each value in`.
    let user_id = "          minLength: 1\n          pattern: '^[^\\x00]*$'\n";
    let not_empty_user =
        generate(&with(user_id, &format!("{user_id}          x-not-empty: true\n"))).unwrap();
    let publish = messages(validator(&not_empty_user.server, "publish_event_request"));
    let user: Vec<String> = publish.into_iter().filter(|m| m.starts_with("userId")).collect();
    assert_eq!(
        user,
        [
            "userId must match /^[^\\x00]*$/ regular expression",
            "userId must be a string",
            "userId should not be empty"
        ]
    );
}

#[test]
fn x_not_empty_must_say_min_length_1_and_be_on_a_string() {
    let without =
        unsupported(&with(CREATE_SECRETS, &CREATE_SECRETS.replace("            minLength: 1\n", "")));
    assert!(
        without.contains("CreateUserWebhookRequest.secrets") && without.contains("minLength: 1"),
        "{without}"
    );
    let two = unsupported(&with(CREATE_SECRETS, &CREATE_SECRETS.replace("minLength: 1", "minLength: 2")));
    assert!(two.contains("minLength: 1"), "{two}");
    let not_bool = unsupported(&with(
        CREATE_SECRETS,
        &CREATE_SECRETS.replace("x-not-empty: true", "x-not-empty: yes please"),
    ));
    assert!(not_bool.contains("x-not-empty must be true or false"), "{not_bool}");
    let on_array =
        unsupported(&with(CREATE_SECRETS, &format!("x-not-empty: true\n          {CREATE_SECRETS}")));
    assert!(
        on_array.contains("CreateUserWebhookRequest.secrets") && on_array.contains("not a string"),
        "{on_array}"
    );
}

#[test]
fn a_pattern_is_a_matches_rule_that_follows_the_spec() {
    let original = generate(SPEC).unwrap();
    let publish = validator(&original.server, "publish_event_request");
    let id: Vec<String> = messages(publish).into_iter().filter(|m| m.starts_with("id ")).collect();
    assert_eq!(
        id,
        [
            "id must match /^[\\x21-\\x7E]*$/ regular expression",
            "id must be longer than or equal to 1 characters",
            "id must be shorter than or equal to 200 characters",
            "id must be a string",
        ]
    );
    assert!(publish.contains(r#"Regex::new("^[\\x21-\\x7E]*$")"#), "{publish}");

    let changed = generate(&with(EVENT_ID, &EVENT_ID.replace("\\x21-\\x7E", "A-Za-z0-9-"))).unwrap();
    let publish = validator(&changed.server, "publish_event_request");
    assert!(
        messages(publish).iter().any(|m| m == "id must match /^[A-Za-z0-9-]*$/ regular expression"),
        "{publish}"
    );
    assert!(publish.contains(r#"Regex::new("^[A-Za-z0-9-]*$")"#), "{publish}");
    assert!(!publish.contains("x21"));

    let removed =
        generate(&with(EVENT_ID, &EVENT_ID.replace("          pattern: '^[\\x21-\\x7E]*$'\n", ""))).unwrap();
    let publish = validator(&removed.server, "publish_event_request");
    assert!(!publish.contains("id must match"), "{publish}");
    assert!(publish.contains("userId must match"), "only the id's rule went: {publish}");
}

#[test]
fn an_invalid_pattern_is_a_build_error_naming_the_property() {
    let invalid = unsupported(&with(EVENT_ID, &EVENT_ID.replace("^[\\x21-\\x7E]*$", "^[\\x21-")));
    assert!(invalid.contains("PublishEventRequest.id") && invalid.contains("pattern"), "{invalid}");
}

#[test]
fn an_enum_value_added_to_the_spec_reaches_the_validator_message() {
    let changed = generate(&with("        - facility.creation.rejected\n      description: |\n        An event", "        - facility.creation.rejected\n        - facility.deleted\n      description: |\n        An event")).unwrap();
    assert!(validators(&changed.server).contains(
        "each value in events must be one of the following values: all, facility.user-connection.accepted, facility.user-connection.rejected, facility.creation.accepted, facility.creation.rejected, facility.deleted"
    ));
}

#[test]
fn the_format_message_comes_from_the_vendor_extension() {
    let changed = generate(&SPEC.replace(
        "x-validation-message: should be a secure URL with HTTPS",
        "x-validation-message: must be https",
    ))
    .unwrap();
    let v = validators(&changed.server);
    assert!(v.contains("\"must be https\""));
    assert!(!v.contains("should be a secure URL with HTTPS"));
}

fn unsupported(spec: &str) -> String {
    match generate(spec) {
        Err(e @ (Error::Unsupported { .. } | Error::Invalid { .. })) => e.to_string(),
        Err(other) => panic!("expected a spec error, got {other}"),
        Ok(_) => panic!("expected a spec error, got generated code"),
    }
}

#[test]
fn unsupported_constructs_are_build_errors_that_name_the_place() {
    let unique = unsupported(&with(
        "minItems: 1\n          items:",
        "minItems: 1\n          uniqueItems: true\n          items:",
    ));
    assert!(unique.contains("CreateUserWebhookRequest.events") && unique.contains("uniqueItems"), "{unique}");

    let unknown_format = unsupported(&with("format: https-url", "format: ftp-url"));
    assert!(unknown_format.contains("ftp-url"), "{unknown_format}");

    let header = unsupported(&with(
        "      parameters:\n        - $ref: '#/components/parameters/WebhookId'\n      tags: [User Webhooks]\n      summary: Get User Webhook",
        "      parameters:\n        - $ref: '#/components/parameters/WebhookId'\n        - name: X-Trace\n          in: header\n          schema: {type: string}\n      tags: [User Webhooks]\n      summary: Get User Webhook",
    ));
    assert!(header.contains("getUserWebhook") && header.contains("header"), "{header}");

    let no_401 = unsupported(&with(
        "      responses:\n        '200':\n          description: The caller's webhooks.\n          content:\n            application/json:\n              schema:\n                $ref: '#/components/schemas/ListUserWebhooksResponse'\n        '401':\n          $ref: '#/components/responses/Unauthorized'\n",
        "      responses:\n        '200':\n          description: The caller's webhooks.\n          content:\n            application/json:\n              schema:\n                $ref: '#/components/schemas/ListUserWebhooksResponse'\n",
    ));
    assert!(no_401.contains("listUserWebhooks") && no_401.contains("401"), "{no_401}");

    let v31 = generate(&SPEC.replacen("openapi: 3.0.3", "openapi: 3.1.0", 1));
    assert!(matches!(v31, Err(Error::Unsupported { .. })));
}

/// The generated handler function `name` (up to the next one).
fn handler<'a>(server: &'a str, name: &str) -> &'a str {
    let start = server.find(&format!("pub async fn {name}<A: Api>")).expect("handler");
    let end = server[start + 1..].find("pub async fn ").map_or(server.len(), |e| e + start + 1);
    &server[start..end]
}

const RETRY_AFTER_HEADER: &str =
    "      headers:\n        Retry-After:\n          $ref: '#/components/headers/RetryAfter'\n";

#[test]
fn a_documented_429_rate_limits_the_operation_after_authentication() {
    let generated = generate(SPEC).unwrap();
    let server = &generated.server;
    let flat = server.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(
        "fn rate_limit( &self, operation: Operation, principal: &Self::Principal, ) -> Result<(), crate::rt::Rejection>;"
    ));
    // The response header is a field of the variant, and the answer sets it.
    assert!(flat.contains(
        "TooManyRequests { body: types::TooManyRequestsError, ///The `Retry-After` header. retry_after: i64, }"
    ));
    assert!(flat.contains(
        "headers .insert( axum::http::HeaderName::from_static(\"retry-after\"), axum::http::HeaderValue::from(retry_after), );"
    ));
    for name in ["list_user_webhooks", "get_user_webhook", "delete_user_webhook"] {
        assert!(handler(server, name).contains(".rate_limit("), "{name} is not rate limited");
    }
    for name in ["create_user_webhook", "update_user_webhook", "search_webhook_logs"] {
        let h = handler(server, name);
        let auth = h.find(".authenticate(").expect("authenticates");
        let limit = h.find(".rate_limit(").unwrap_or_else(|| panic!("{name} is not rate limited"));
        let input = h.find("validate::").expect("validates");
        assert!(auth < limit && limit < input, "{name}: authenticate, then the limit, then the input");
    }
    assert!(!handler(server, "publish_event").contains(".rate_limit("));
    assert!(!handler(server, "get_health").contains(".rate_limit("));

    // Without its 429, an operation is no longer limited.
    let without = generate(&with(
        "        '403':\n          $ref: '#/components/responses/Forbidden'\n        '429':\n          $ref: '#/components/responses/TooManyRequests'\n  /api/v2/public/webhooks/user/{webhookId}:",
        "        '403':\n          $ref: '#/components/responses/Forbidden'\n  /api/v2/public/webhooks/user/{webhookId}:",
    ))
    .unwrap();
    assert!(!handler(&without.server, "list_user_webhooks").contains(".rate_limit("));
    assert!(handler(&without.server, "create_user_webhook").contains(".rate_limit("));
}

#[test]
fn a_429_needs_a_caller_and_a_retry_after_header() {
    let no_header = unsupported(&with(RETRY_AFTER_HEADER, ""));
    assert!(no_header.contains("429") && no_header.contains("Retry-After"), "{no_header}");

    let optional = unsupported(&with(
        "      required: true\n      schema:\n        type: integer\n        minimum: 1",
        "      schema:\n        type: integer\n        minimum: 1",
    ));
    assert!(optional.contains("Retry-After"), "{optional}");

    let open = unsupported(&with(
        "      security: []\n      responses:\n        '200':\n          description: The process is up.",
        "      security: []\n      responses:\n        '429':\n          $ref: '#/components/responses/TooManyRequests'\n        '200':\n          description: The process is up.",
    ));
    assert!(open.contains("getHealth") && open.contains("bearer"), "{open}");
}

#[test]
fn response_headers_the_generator_cannot_honour_are_build_errors() {
    let array = unsupported(&with(
        "      schema:\n        type: integer\n        minimum: 1\n      example: 1",
        "      schema:\n        type: array\n        items: {type: integer}\n      example: [1]",
    ));
    assert!(array.contains("Retry-After") && array.contains("integer or a string"), "{array}");

    let content = unsupported(&with(
        "      schema:\n        type: integer\n        minimum: 1\n      example: 1",
        "      content:\n        text/plain:\n          schema: {type: integer}",
    ));
    assert!(content.contains("Retry-After") && content.contains("content"), "{content}");

    let nowhere =
        unsupported(&with("$ref: '#/components/headers/RetryAfter'", "$ref: '#/components/headers/Nothing'"));
    assert!(nowhere.contains("Nothing"), "{nowhere}");

    let bad_name = unsupported(&with(
        RETRY_AFTER_HEADER,
        &format!("{RETRY_AFTER_HEADER}        Bad Name:\n          schema: {{type: string}}\n"),
    ));
    assert!(bad_name.contains("Bad Name"), "{bad_name}");

    for name in ["Body", "Type", "1-Up"] {
        let clash = unsupported(&with(
            RETRY_AFTER_HEADER,
            &format!("{RETRY_AFTER_HEADER}        {name}:\n          schema: {{type: string}}\n"),
        ));
        assert!(clash.contains(name) && clash.contains("field name"), "{clash}");
    }

    let content_type = unsupported(&with(
        RETRY_AFTER_HEADER,
        &format!("{RETRY_AFTER_HEADER}        Content-Type:\n          schema: {{type: string}}\n"),
    ));
    assert!(content_type.contains("Content-Type"), "{content_type}");

    // An optional string header is supported: an Option of a HeaderValue.
    let extra = generate(&with(
        RETRY_AFTER_HEADER,
        &format!("{RETRY_AFTER_HEADER}        X-RateLimit-Policy:\n          schema: {{type: string}}\n"),
    ))
    .unwrap();
    assert!(extra.server.contains("x_rate_limit_policy: Option<axum::http::HeaderValue>"));
    assert!(extra.server.contains("if let Some(value) = x_rate_limit_policy"));
}

/// The start of `x-required-data` of `EventType`, the enum of `PublishEventRequest.eventType`
/// (the user events' enum lists the same first entries, without the shift events after them).
const REQUIRED_DATA: &str = "      x-required-data:\n        facility.user-connection.accepted: [facilityId, userId]\n        facility.user-connection.rejected: [facilityId, userId]\n        facility.creation.accepted: [facilityId]\n        facility.creation.rejected: [facilityName]\n        shift.request.created: [facilityId]\n";

#[test]
fn x_required_data_becomes_a_validator_per_event_type() {
    let generated = generate(SPEC).unwrap();
    let data = validator(&generated.server, "publish_event_request_data");
    let flat = data.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("\"facility.creation.rejected\" => { if !crate::rt::rules::is_string(fields.get(\"facilityName\"))"), "{data}");
    assert_eq!(messages(data).iter().filter(|m| *m == "data.userId must be a string").count(), 2);

    // A field added in the spec reaches the validator.
    let changed = generate(&with(
        REQUIRED_DATA,
        &REQUIRED_DATA.replace("[facilityId, userId]", "[facilityId, userId, at]"),
    ))
    .unwrap();
    assert!(messages(validator(&changed.server, "publish_event_request_data"))
        .contains(&"data.at must be a string".to_owned()));

    // Every event type must say what its data carries, and only event types may.
    let missing = unsupported(&with(REQUIRED_DATA, "      x-required-data:\n"));
    assert!(
        missing.contains("PublishEventRequest.data") && missing.contains("facility.user-connection.accepted"),
        "{missing}"
    );
    let unknown =
        unsupported(&with(REQUIRED_DATA, &format!("{REQUIRED_DATA}        facility.deleted: []\n")));
    assert!(unknown.contains("facility.deleted"), "{unknown}");
    let nowhere = unsupported(&SPEC.replacen("x-required-by: eventType", "x-required-by: kind", 1));
    assert!(nowhere.contains("no sibling property kind"), "{nowhere}");
}

#[test]
fn inline_query_enums_and_date_times_are_typed() {
    let generated = generate(SPEC).unwrap();
    let server = &generated.server;
    assert!(server.contains("pub sort_direction: SearchWebhookLogsSortDirection,"));
    assert!(server.contains("pub enum SearchWebhookLogsSortDirection {"));
    assert!(server.contains("pub start_date: Option<chrono::DateTime<chrono::Utc>>,"));
    let h = handler(server, "search_webhook_logs");
    let validate = h.find("validate::search_webhook_logs_query").expect("validates");
    let parse = h.find("crate::rt::date::parse_instant").expect("parses with the one parser");
    assert!(validate < parse, "the shape first, then the instant");
}

#[test]
fn callbacks_become_a_body_validator_and_their_headers() {
    let generated = generate(SPEC).unwrap();
    let flat = generated.server.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("pub const REQUIRED_HEADERS: &[&str] = &[\"Nursa-Signature\", \"Nursa-Event-Id\"];"),
        "{flat}"
    );
    assert!(flat.contains("pub const BODY_SCHEMA: &str = \"UserEventDelivery\";"));
    assert!(flat.contains("super::super::validate::user_event_delivery_data(by, fields)"));
    // The CLI's constants come from the spec too.
    let client = generated.client.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        client.contains("pub const CREATE_USER_WEBHOOK_REQUEST_SECRETS_MAX_ITEMS: usize = 2usize;"),
        "{client}"
    );
    assert!(client.contains("pub const USER_EVENT_TYPE: [&str; 4usize] = ["));
}

#[test]
fn x_single_as_list_drops_the_array_rule_and_wraps_a_lone_value() {
    let generated = generate(SPEC).unwrap();
    let create = messages(validator(&generated.server, "create_webhook_request"));
    assert!(create.contains(&"each value in facilities must be a string".to_owned()), "{create:?}");
    assert!(!create.contains(&"facilities must be an array".to_owned()), "{create:?}");
    let flat = handler(&generated.server, "create_facility_webhook")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(flat.contains("rt::body::single_as_list(&mut value, &[\"facilities\"]);"), "{flat}");
    // Without the extension the property is a plain array again, with its message.
    let plain = generate(&SPEC.replacen("          x-single-as-list: true\n", "", 1)).unwrap();
    let create = messages(validator(&plain.server, "create_webhook_request"));
    assert!(create.contains(&"facilities must be an array".to_owned()), "{create:?}");
    // Only arrays without item counts may carry it.
    let counted = unsupported(&SPEC.replacen(
        "          x-single-as-list: true\n",
        "          x-single-as-list: true\n          maxItems: 3\n",
        1,
    ));
    assert!(counted.contains("x-single-as-list"), "{counted}");
}

#[test]
fn a_form_array_query_parameter_is_a_list_of_strings() {
    let generated = generate(SPEC).unwrap();
    assert!(generated.server.contains("pub facilities_ids: Option<Vec<String>>,"));
    let flat =
        handler(&generated.server, "search_webhook_logs").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("rt::query::to_list(&mut query, \"facilitiesIds\");"), "{flat}");
    let piped = unsupported(&SPEC.replacen(
        "          style: form\n          explode: true\n",
        "          style: form\n          explode: false\n",
        1,
    ));
    assert!(piped.contains("facilitiesIds"), "{piped}");
}

#[test]
fn x_required_if_makes_a_property_required_for_some_values_of_a_sibling() {
    let generated = generate(SPEC).unwrap();
    let publish = validator(&generated.server, "publish_event_request");
    let flat = publish.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("v.as_str()), Some(\"facility.user-connection.accepted\" | \"facility.user-connection.rejected\" | \"facility.creation.accepted\" | \"facility.creation.rejected\") ) || field(\"userId\").is_some_and(|v| !v.is_null()) { let v = field(\"userId\");"),
        "{flat}"
    );
    // A value the sibling cannot take, a property that is always required, a sibling that is not
    // an enum: build errors.
    let rule = "          x-required-if:\n            eventType:\n              - facility.user-connection.accepted\n";
    let unknown = unsupported(&SPEC.replacen(
        rule,
        "          x-required-if:\n            eventType:\n              - facility.deleted\n",
        1,
    ));
    assert!(unknown.contains("facility.deleted"), "{unknown}");
    let not_enum = unsupported(&SPEC.replacen(
        rule,
        "          x-required-if:\n            data:\n              - facility.user-connection.accepted\n",
        1,
    ));
    assert!(not_enum.contains("data is not a sibling string enum"), "{not_enum}");
    let always = unsupported(&SPEC.replacen(
        "      required: [eventType, data]\n",
        "      required: [eventType, userId, data]\n",
        1,
    ));
    assert!(always.contains("always required"), "{always}");
}
