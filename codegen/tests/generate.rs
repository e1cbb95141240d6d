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
    let changed = generate(&with("maxItems: 2\n          items:\n            type: string\n          description: |-\n            The secrets that will be used to verify the authenticity of the webhook.\n            If no value", "maxItems: 3\n          items:\n            type: string\n          description: |-\n            The secrets that will be used to verify the authenticity of the webhook.\n            If no value")).unwrap();
    let before = validators(&original.server);
    let after = validators(&changed.server);
    assert!(before.contains("secrets must contain no more than 2 elements"));
    assert!(after.contains("secrets must contain no more than 3 elements"));
    assert!(after.contains("max_items(v, 3usize)"));
    // Only the create body changed; the update body still allows 2.
    assert_eq!(after.matches("no more than 2 elements").count(), 1);
    insta::assert_snapshot!("validators_with_max_items_3", after);
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
    let pattern = unsupported(&with(
        "format: https-url\n          x-validation-message",
        "pattern: '^https'\n          format: https-url\n          x-validation-message",
    ));
    assert!(pattern.contains("CreateUserWebhookRequest.url") && pattern.contains("pattern"), "{pattern}");

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
