use super::*;

const PG15_CERT: &[u8] = include_bytes!("../testdata/pg15_server.der");

fn tls() -> ChannelSecurity {
    ChannelSecurity::Tls {
        server_certificate_der: PG15_CERT.to_vec(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn scram_user(mode: ChannelBindingMode) -> AuthConfig {
    AuthConfig::new("scram_user")
        .password("pencil")
        .channel_binding(mode)
}

/// Replays the recorded PostgreSQL 15 SCRAM-SHA-256-PLUS exchange through the whole phase.
#[test]
fn recorded_plus_exchange_end_to_end() {
    let mut auth = Authenticator::new(scram_user(ChannelBindingMode::Require), tls())
        .with_nonce(ClientNonce::new("Iu7ZRgqAQD7+S1n+uNqobwbc").unwrap());
    let offered = names(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    let Some(AuthResponse::SaslInitialResponse { mechanism, data }) = auth
        .handle(AuthRequest::Sasl {
            mechanisms: &offered,
        })
        .unwrap()
    else {
        panic!("expected SASLInitialResponse");
    };
    assert_eq!(mechanism, Mechanism::ScramSha256Plus);
    assert_eq!(
        data,
        b"p=tls-server-end-point,,n=,r=Iu7ZRgqAQD7+S1n+uNqobwbc"
    );
    let response = auth
        .handle(AuthRequest::SaslContinue(
            b"r=Iu7ZRgqAQD7+S1n+uNqobwbcWrwIrSj+rvpqHG3dkUWp7lJV,s=FV2y5w7GUUEeU0w7LKZ+5w==,i=4096",
        ))
        .unwrap();
    let Some(AuthResponse::SaslResponse(client_final)) = response else {
        panic!("{response:?}")
    };
    assert!(client_final.ends_with(b",p=0VC5m2QjnVBnLkFerrVJ7tjXcprzSsk2HBaWs1PKnP8="));
    // Ok before the final message is refused: the server has not proven anything yet.
    let mut early = Authenticator::new(scram_user(ChannelBindingMode::Prefer), tls())
        .with_nonce(ClientNonce::new("Iu7ZRgqAQD7+S1n+uNqobwbc").unwrap());
    early
        .handle(AuthRequest::Sasl {
            mechanisms: &offered,
        })
        .unwrap();
    assert!(matches!(
        early.handle(AuthRequest::Ok),
        Err(AuthError::UnexpectedMessage(_))
    ));

    assert_eq!(
        auth.handle(AuthRequest::SaslFinal(
            b"v=eOE9x/xtJELjK/RUwVi9Zj19vXUhNvJbsSX84abuFfc="
        ))
        .unwrap(),
        None
    );
    assert!(auth.channel_bound());
    assert_eq!(auth.handle(AuthRequest::Ok).unwrap(), None);
    assert!(auth.is_authenticated());
    assert!(matches!(
        auth.handle(AuthRequest::Ok),
        Err(AuthError::UnexpectedMessage(_))
    ));
}

#[test]
fn recorded_plain_exchange_end_to_end() {
    let mut auth = Authenticator::new(
        scram_user(ChannelBindingMode::Prefer),
        ChannelSecurity::Plaintext,
    )
    .with_nonce(ClientNonce::new("W8d0yl0Af2QjlTAiJxTjNoRx").unwrap());
    let offered = names(&["SCRAM-SHA-256"]);
    auth.handle(AuthRequest::Sasl {
        mechanisms: &offered,
    })
    .unwrap();
    auth.handle(AuthRequest::SaslContinue(
        b"r=W8d0yl0Af2QjlTAiJxTjNoRxFIeVYEW8yy77ij1efJ6yr7RP,s=FV2y5w7GUUEeU0w7LKZ+5w==,i=4096",
    ))
    .unwrap();
    // A forged final signature: the typed error, never AuthenticationOk.
    let mut forged = Authenticator::new(
        scram_user(ChannelBindingMode::Prefer),
        ChannelSecurity::Plaintext,
    )
    .with_nonce(ClientNonce::new("W8d0yl0Af2QjlTAiJxTjNoRx").unwrap());
    forged
        .handle(AuthRequest::Sasl {
            mechanisms: &offered,
        })
        .unwrap();
    forged
        .handle(AuthRequest::SaslContinue(
            b"r=W8d0yl0Af2QjlTAiJxTjNoRxFIeVYEW8yy77ij1efJ6yr7RP,s=FV2y5w7GUUEeU0w7LKZ+5w==,i=4096",
        ))
        .unwrap();
    assert_eq!(
        forged.handle(AuthRequest::SaslFinal(
            b"v=eOE9x/xtJELjK/RUwVi9Zj19vXUhNvJbsSX84abuFfc="
        )),
        Err(AuthError::ServerSignatureMismatch)
    );

    auth.handle(AuthRequest::SaslFinal(
        b"v=COqbkyz5cAYkjRPk+7omC6DedOhfu3rkJTkcLcPuYgg=",
    ))
    .unwrap();
    assert!(!auth.channel_bound());
    auth.handle(AuthRequest::Ok).unwrap();
    assert!(auth.is_authenticated());
}

#[test]
fn tls_without_plus_sends_y() {
    let mut auth = Authenticator::new(scram_user(ChannelBindingMode::Prefer), tls())
        .with_nonce(ClientNonce::new("abc").unwrap());
    let r = auth
        .handle(AuthRequest::Sasl {
            mechanisms: &names(&["SCRAM-SHA-256"]),
        })
        .unwrap();
    assert_eq!(
        r,
        Some(AuthResponse::SaslInitialResponse {
            mechanism: Mechanism::ScramSha256,
            data: b"y,,n=,r=abc".to_vec()
        })
    );
    // channel_binding=disable over TLS: "n" even though PLUS is offered.
    let mut auth = Authenticator::new(scram_user(ChannelBindingMode::Disable), tls())
        .with_nonce(ClientNonce::new("abc").unwrap());
    let r = auth
        .handle(AuthRequest::Sasl {
            mechanisms: &names(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]),
        })
        .unwrap();
    assert!(
        matches!(r, Some(AuthResponse::SaslInitialResponse { ref data, .. }) if data.starts_with(b"n,,"))
    );
}

#[test]
fn cleartext_and_md5() {
    let mut auth = Authenticator::new(
        AuthConfig::new("u").password("secret"),
        ChannelSecurity::Plaintext,
    );
    assert_eq!(
        auth.handle(AuthRequest::CleartextPassword).unwrap(),
        Some(AuthResponse::Password(b"secret".to_vec()))
    );
    auth.handle(AuthRequest::Ok).unwrap();

    let mut auth = Authenticator::new(
        AuthConfig::new("md5_user").password("md5_pass"),
        ChannelSecurity::Plaintext,
    );
    let r = auth
        .handle(AuthRequest::Md5Password { salt: [1, 2, 3, 4] })
        .unwrap();
    assert_eq!(
        r,
        Some(AuthResponse::Password(
            b"md5c6ee6bd10a7adf513019b25f24df0925".to_vec()
        ))
    );
}

#[test]
fn trust_needs_no_password() {
    let mut auth = Authenticator::new(AuthConfig::new("u"), ChannelSecurity::Plaintext);
    assert_eq!(auth.handle(AuthRequest::Ok).unwrap(), None);
    assert!(auth.is_authenticated());
}

#[test]
fn missing_or_nul_password() {
    let mut auth = Authenticator::new(AuthConfig::new("u"), ChannelSecurity::Plaintext);
    assert_eq!(
        auth.handle(AuthRequest::CleartextPassword),
        Err(AuthError::PasswordMissing)
    );
    let mut auth = Authenticator::new(AuthConfig::new("u"), ChannelSecurity::Plaintext);
    assert_eq!(
        auth.handle(AuthRequest::Sasl {
            mechanisms: &names(&["SCRAM-SHA-256"])
        }),
        Err(AuthError::PasswordMissing)
    );
    let mut auth = Authenticator::new(
        AuthConfig::new("u").password(&b"a\0b"[..]),
        ChannelSecurity::Plaintext,
    );
    assert_eq!(
        auth.handle(AuthRequest::Md5Password { salt: [0; 4] }),
        Err(AuthError::PasswordContainsNul)
    );
}

#[test]
fn channel_binding_require_refuses_everything_but_plus() {
    let config = || scram_user(ChannelBindingMode::Require);
    for (request, method) in [
        (AuthRequest::CleartextPassword, "cleartext password"),
        (AuthRequest::Md5Password { salt: [0; 4] }, "MD5 password"),
        (AuthRequest::Other(7), "non-SASL"),
    ] {
        let mut auth = Authenticator::new(config(), tls());
        assert_eq!(
            auth.handle(request),
            Err(AuthError::ChannelBindingMethodRefused { method })
        );
    }
    // Trust: Ok without any exchange.
    let mut auth = Authenticator::new(config(), tls());
    assert_eq!(
        auth.handle(AuthRequest::Ok),
        Err(AuthError::ChannelBindingNotPerformed)
    );
    // Server offers only SCRAM-SHA-256.
    let mut auth = Authenticator::new(config(), tls());
    assert_eq!(
        auth.handle(AuthRequest::Sasl {
            mechanisms: &names(&["SCRAM-SHA-256"])
        }),
        Err(AuthError::ChannelBindingNotOffered)
    );
    // No TLS at all.
    let mut auth = Authenticator::new(config(), ChannelSecurity::Plaintext);
    assert_eq!(
        auth.handle(AuthRequest::Sasl {
            mechanisms: &names(&["SCRAM-SHA-256"])
        }),
        Err(AuthError::ChannelBindingNotOffered)
    );
}

#[test]
fn plus_over_plaintext_is_refused() {
    let mut auth = Authenticator::new(
        scram_user(ChannelBindingMode::Prefer),
        ChannelSecurity::Plaintext,
    );
    assert_eq!(
        auth.handle(AuthRequest::Sasl {
            mechanisms: &names(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
        }),
        Err(AuthError::PlusWithoutTls)
    );
}

#[test]
fn unusable_certificate_fails_plus() {
    let security = ChannelSecurity::Tls {
        server_certificate_der: include_bytes!("../testdata/ed25519.der").to_vec(),
    };
    let mut auth = Authenticator::new(scram_user(ChannelBindingMode::Prefer), security);
    assert!(matches!(
        auth.handle(AuthRequest::Sasl {
            mechanisms: &names(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
        }),
        Err(AuthError::UnsupportedCertificateSignature { .. })
    ));
}

#[test]
fn require_auth_is_enforced() {
    let require = |spec: &str| {
        AuthConfig::new("u")
            .password("pw")
            .require_auth(RequireAuth::parse(spec).unwrap())
    };
    let mut auth = Authenticator::new(require("scram-sha-256"), ChannelSecurity::Plaintext);
    let err = auth
        .handle(AuthRequest::Md5Password { salt: [0; 4] })
        .unwrap_err();
    assert!(matches!(err, AuthError::RequireAuthFailed { .. }));
    let mut auth = Authenticator::new(require("scram-sha-256"), ChannelSecurity::Plaintext);
    assert!(matches!(
        auth.handle(AuthRequest::Ok),
        Err(AuthError::RequireAuthFailed { .. })
    ));
    // password then Ok: the exchange finished, so Ok passes.
    let mut auth = Authenticator::new(require("password"), ChannelSecurity::Plaintext);
    auth.handle(AuthRequest::CleartextPassword).unwrap();
    auth.handle(AuthRequest::Ok).unwrap();
    // Negated list forbids md5.
    let mut auth = Authenticator::new(require("!md5"), ChannelSecurity::Plaintext);
    assert!(matches!(
        auth.handle(AuthRequest::Md5Password { salt: [0; 4] }),
        Err(AuthError::RequireAuthFailed { .. })
    ));
}

#[test]
fn out_of_order_and_unsupported() {
    let fresh = || {
        Authenticator::new(
            scram_user(ChannelBindingMode::Prefer),
            ChannelSecurity::Plaintext,
        )
        .with_nonce(ClientNonce::new("abc").unwrap())
    };
    assert!(matches!(
        fresh().handle(AuthRequest::SaslContinue(b"r=x")),
        Err(AuthError::UnexpectedMessage(_))
    ));
    assert!(matches!(
        fresh().handle(AuthRequest::SaslFinal(b"v=x")),
        Err(AuthError::UnexpectedMessage(_))
    ));
    assert_eq!(
        fresh().handle(AuthRequest::Other(7)),
        Err(AuthError::UnsupportedMethod {
            code: 7,
            name: "GSSAPI"
        })
    );
    assert_eq!(
        fresh().handle(AuthRequest::Other(42)),
        Err(AuthError::UnsupportedMethod {
            code: 42,
            name: "unknown"
        })
    );
    let offered = names(&["SCRAM-SHA-256"]);
    let mut auth = fresh();
    auth.handle(AuthRequest::Sasl {
        mechanisms: &offered,
    })
    .unwrap();
    assert!(matches!(
        auth.handle(AuthRequest::Sasl {
            mechanisms: &offered
        }),
        Err(AuthError::UnexpectedMessage(_))
    ));
}

#[test]
fn nothing_leaks_the_password() {
    let password = "Tr0ub4dor&3";
    let config = AuthConfig::new("u")
        .password(password)
        .channel_binding(ChannelBindingMode::Require);
    assert!(!format!("{config:?}").contains(password));
    let mut auth = Authenticator::new(config.clone(), tls());
    assert!(!format!("{auth:?}").contains(password));
    let response = Authenticator::new(
        AuthConfig::new("u").password(password),
        ChannelSecurity::Plaintext,
    )
    .handle(AuthRequest::CleartextPassword)
    .unwrap();
    assert!(!format!("{response:?}").contains(password));
    let errors = [
        auth.handle(AuthRequest::CleartextPassword).unwrap_err(),
        Authenticator::new(config, tls())
            .handle(AuthRequest::Ok)
            .unwrap_err(),
    ];
    for err in errors {
        assert!(!format!("{err}").contains(password));
        assert!(!format!("{err:?}").contains(password));
    }
}

#[test]
fn an_error_ends_the_exchange() {
    let mut auth = Authenticator::new(AuthConfig::new("u"), ChannelSecurity::Plaintext);
    assert_eq!(
        auth.handle(AuthRequest::CleartextPassword),
        Err(AuthError::PasswordMissing)
    );
    // A server that goes on anyway gets nowhere: not even AuthenticationOk is accepted.
    assert!(matches!(
        auth.handle(AuthRequest::Ok),
        Err(AuthError::UnexpectedMessage(_))
    ));
    assert!(!auth.is_authenticated());
}

/// Issue 12 item 8 through the whole phase: `step` hands the derivation out, the configured
/// cap refuses a hostile count before any work, and `finish_derivation` completes the
/// recorded PostgreSQL 15 exchange.
#[test]
fn step_hands_out_the_key_derivation_and_enforces_the_cap() {
    let server_first: &[u8] =
        b"r=W8d0yl0Af2QjlTAiJxTjNoRxFIeVYEW8yy77ij1efJ6yr7RP,s=FV2y5w7GUUEeU0w7LKZ+5w==,i=4096";
    let offered = names(&["SCRAM-SHA-256"]);
    let start = |config: AuthConfig| {
        let mut auth = Authenticator::new(config, ChannelSecurity::Plaintext)
            .with_nonce(ClientNonce::new("W8d0yl0Af2QjlTAiJxTjNoRx").unwrap());
        assert!(matches!(
            auth.step(AuthRequest::Sasl {
                mechanisms: &offered
            }),
            Ok(AuthStep::Send(AuthResponse::SaslInitialResponse { .. }))
        ));
        auth
    };

    let mut auth = start(scram_user(ChannelBindingMode::Prefer));
    let Ok(AuthStep::Derive(derivation)) = auth.step(AuthRequest::SaslContinue(server_first))
    else {
        panic!("expected a key derivation");
    };
    let response = auth.finish_derivation(&derivation.derive()).unwrap();
    let AuthResponse::SaslResponse(client_final) = response else {
        panic!("{response:?}")
    };
    assert!(client_final.ends_with(b",p=ftEj2CMnVdfv9XucXp36vPz9PKZPOLJgByBAL4i5JUo="));
    auth.handle(AuthRequest::SaslFinal(
        b"v=COqbkyz5cAYkjRPk+7omC6DedOhfu3rkJTkcLcPuYgg=",
    ))
    .unwrap();
    auth.handle(AuthRequest::Ok).unwrap();
    assert!(auth.is_authenticated());

    let mut capped = start(scram_user(ChannelBindingMode::Prefer).max_scram_iterations(4000));
    assert_eq!(
        capped
            .step(AuthRequest::SaslContinue(server_first))
            .unwrap_err(),
        AuthError::ScramIterationsTooHigh {
            iterations: 4096,
            max: 4000
        }
    );
    assert!(matches!(
        capped.handle(AuthRequest::Ok),
        Err(AuthError::UnexpectedMessage(_))
    ));

    let mut hostile = start(scram_user(ChannelBindingMode::Prefer));
    assert!(matches!(
        hostile.handle(AuthRequest::SaslContinue(
            b"r=W8d0yl0Af2QjlTAiJxTjNoRxFIeVYEW8yy77ij1efJ6yr7RP,s=FV2y5w7GUUEeU0w7LKZ+5w==,i=4294967295",
        )),
        Err(AuthError::ScramIterationsTooHigh {
            iterations: u32::MAX,
            ..
        })
    ));
}
