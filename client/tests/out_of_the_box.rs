//! The constructors in a process that has set nothing up: this file is a test binary of its
//! own, so no other test has installed a TLS crypto provider first.

#[test]
fn constructors_work_in_a_fresh_process_and_refuse_unsendable_tokens() {
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "a provider was installed before the test"
    );
    webhooks_client::with_token("https://webhooks.example", "a.jwt.token").expect("with_token");
    assert!(rustls::crypto::CryptoProvider::get_default().is_some(), "the constructor brought the provider");
    webhooks_client::anonymous("http://127.0.0.1:9").expect("anonymous");
    let newline = webhooks_client::with_token("https://webhooks.example", "a.jwt\n.token");
    assert!(matches!(newline, Err(webhooks_client::ClientError::InvalidToken)));
    let empty = webhooks_client::with_token("https://webhooks.example", "");
    assert!(matches!(empty, Err(webhooks_client::ClientError::EmptyToken)));
}
