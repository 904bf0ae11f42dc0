use super::*;

const RFC_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &[u8] =
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_client() -> ScramClient {
    ScramClient::new(
        "user",
        &Password::from("pencil"),
        ScramBinding::NotSupported,
        ClientNonce::new(RFC_NONCE).unwrap(),
    )
}

fn malformed(stage: ScramStage) -> impl Fn(&AuthError) -> bool {
    move |e| matches!(e, AuthError::MalformedScramMessage { stage: s, .. } if *s == stage)
}

#[test]
fn rfc7677_vector() {
    let mut scram = rfc_client();
    assert_eq!(
        scram.client_first_message(),
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    );
    assert_eq!(scram.mechanism(), Mechanism::ScramSha256);
    assert_eq!(
        scram.handle_server_first(RFC_SERVER_FIRST).unwrap(),
        RFC_CLIENT_FINAL
    );
    assert!(!scram.is_complete());
    scram.handle_server_final(RFC_SERVER_FINAL).unwrap();
    assert!(scram.is_complete());
    assert!(!scram.channel_bound());
}

/// Recorded against PostgreSQL 15.18, role `scram_user` with password `pencil`, no TLS.
#[test]
fn recorded_postgresql_exchange() {
    let mut scram = ScramClient::new(
        "",
        &Password::from("pencil"),
        ScramBinding::NotSupported,
        ClientNonce::new("W8d0yl0Af2QjlTAiJxTjNoRx").unwrap(),
    );
    assert_eq!(
        scram.client_first_message(),
        b"n,,n=,r=W8d0yl0Af2QjlTAiJxTjNoRx"
    );
    let client_final = scram
        .handle_server_first(
            b"r=W8d0yl0Af2QjlTAiJxTjNoRxFIeVYEW8yy77ij1efJ6yr7RP,s=FV2y5w7GUUEeU0w7LKZ+5w==,i=4096",
        )
        .unwrap();
    assert_eq!(
        client_final,
        b"c=biws,r=W8d0yl0Af2QjlTAiJxTjNoRxFIeVYEW8yy77ij1efJ6yr7RP,p=ftEj2CMnVdfv9XucXp36vPz9PKZPOLJgByBAL4i5JUo="
    );
    scram
        .handle_server_final(b"v=COqbkyz5cAYkjRPk+7omC6DedOhfu3rkJTkcLcPuYgg=")
        .unwrap();
    assert!(scram.is_complete());
}

/// Recorded against PostgreSQL 15.18 over TLS with SCRAM-SHA-256-PLUS; the server accepted the
/// binding to `testdata/pg15_server.der` (sha256WithRSAEncryption).
#[test]
fn recorded_postgresql_plus_exchange() {
    let binding =
        ChannelBinding::tls_server_end_point(include_bytes!("../testdata/pg15_server.der"))
            .unwrap();
    let mut scram = ScramClient::new(
        "",
        &Password::from("pencil"),
        ScramBinding::TlsServerEndPoint(binding),
        ClientNonce::new("Iu7ZRgqAQD7+S1n+uNqobwbc").unwrap(),
    );
    assert_eq!(scram.mechanism(), Mechanism::ScramSha256Plus);
    assert_eq!(
        scram.client_first_message(),
        b"p=tls-server-end-point,,n=,r=Iu7ZRgqAQD7+S1n+uNqobwbc"
    );
    let client_final = scram
        .handle_server_first(
            b"r=Iu7ZRgqAQD7+S1n+uNqobwbcWrwIrSj+rvpqHG3dkUWp7lJV,s=FV2y5w7GUUEeU0w7LKZ+5w==,i=4096",
        )
        .unwrap();
    assert_eq!(
        client_final,
        b"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwswCQJKUqHnTn7HJW1dNzaN9Y3duKWzTz+r7uVEIU23T0=,\
r=Iu7ZRgqAQD7+S1n+uNqobwbcWrwIrSj+rvpqHG3dkUWp7lJV,p=0VC5m2QjnVBnLkFerrVJ7tjXcprzSsk2HBaWs1PKnP8="
    );
    scram
        .handle_server_final(b"v=eOE9x/xtJELjK/RUwVi9Zj19vXUhNvJbsSX84abuFfc=")
        .unwrap();
    assert!(scram.is_complete());
    assert!(scram.channel_bound());
}

#[test]
fn gs2_header_y_and_username_escaping() {
    let scram = ScramClient::new(
        "a,b=c",
        &Password::from("x"),
        ScramBinding::SupportedNotUsed,
        ClientNonce::new("abc").unwrap(),
    );
    assert_eq!(scram.client_first_message(), b"y,,n=a=2Cb=3Dc,r=abc");
    let mut scram = scram;
    let client_final = scram.handle_server_first(b"r=abcdef,s=QUJD,i=1").unwrap();
    // c= carries the GS2 header "y,," in base64.
    assert!(client_final.starts_with(b"c=eSws,r=abcdef,p="));
}

#[test]
fn server_signature_mismatch_is_an_error() {
    let mut scram = rfc_client();
    scram.handle_server_first(RFC_SERVER_FIRST).unwrap();
    // A valid-looking signature with one bit flipped (last char 'G' → 'H').
    let err = scram
        .handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95H4=")
        .unwrap_err();
    assert_eq!(err, AuthError::ServerSignatureMismatch);
    assert!(!scram.is_complete());
    // The exchange is dead afterwards.
    assert!(matches!(
        scram.handle_server_final(RFC_SERVER_FINAL),
        Err(AuthError::UnexpectedMessage(_))
    ));
}

#[test]
fn wrong_password_gives_a_different_proof_and_rejects_the_server() {
    let mut scram = ScramClient::new(
        "user",
        &Password::from("pencils"),
        ScramBinding::NotSupported,
        ClientNonce::new(RFC_NONCE).unwrap(),
    );
    assert_ne!(
        scram.handle_server_first(RFC_SERVER_FIRST).unwrap(),
        RFC_CLIENT_FINAL
    );
    assert_eq!(
        scram.handle_server_final(RFC_SERVER_FINAL),
        Err(AuthError::ServerSignatureMismatch)
    );
}

#[test]
fn sasl_prep_is_applied_to_the_password() {
    // "pen\u{00AD}cil" SASLprep's to "pencil" (soft hyphen maps to nothing).
    let mut scram = ScramClient::new(
        "user",
        &Password::from("pen\u{00AD}cil"),
        ScramBinding::NotSupported,
        ClientNonce::new(RFC_NONCE).unwrap(),
    );
    assert_eq!(
        scram.handle_server_first(RFC_SERVER_FIRST).unwrap(),
        RFC_CLIENT_FINAL
    );
}

#[test]
fn nonce_mismatch() {
    for server_first in [
        &b"r=XOprNGfwEbeRWgbNEkqOabc,s=QUJD,i=4096"[..],
        b"r=rOprNGfwEbeRWgbNEkqO,s=QUJD,i=4096", // nothing appended
        b"r=rOprNG,s=QUJD,i=4096",
    ] {
        let mut scram = rfc_client();
        assert_eq!(
            scram.handle_server_first(server_first),
            Err(AuthError::NonceMismatch)
        );
    }
}

#[test]
fn malformed_server_first_messages() {
    let cases: &[&[u8]] = &[
        b"",
        b"m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=1",
        b"s=QUJD,r=rOprNGfwEbeRWgbNEkqOx,i=1",
        b"r=,s=QUJD,i=1",
        b"r=rOprNGfwEbeRWgbNEkqO\x01,s=QUJD,i=1",
        b"r=rOprNGfwEbeRWgbNEkqOx",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=,i=1",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=!!!,i=1",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=0",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=-1",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=+5",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=99999999999",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=4096,x=extra",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=QUJD,i=4096,",
    ];
    for case in cases {
        let mut scram = rfc_client();
        let err = scram.handle_server_first(case).unwrap_err();
        assert!(
            malformed(ScramStage::ServerFirst)(&err),
            "{}: {err:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn malformed_server_final_messages() {
    let cases: &[&[u8]] = &[
        b"",
        b"x=abc",
        b"v=",
        b"v=!!!!",
        b"v=QUJD",
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",
    ];
    for case in cases {
        let mut scram = rfc_client();
        scram.handle_server_first(RFC_SERVER_FIRST).unwrap();
        let err = scram.handle_server_final(case).unwrap_err();
        assert!(
            malformed(ScramStage::ServerFinal)(&err),
            "{}: {err:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn server_error_attribute() {
    let mut scram = rfc_client();
    scram.handle_server_first(RFC_SERVER_FIRST).unwrap();
    assert_eq!(
        scram.handle_server_final(b"e=invalid-proof"),
        Err(AuthError::ServerError("invalid-proof".into()))
    );
}

#[test]
fn out_of_order_calls() {
    let mut scram = rfc_client();
    assert!(matches!(
        scram.handle_server_final(RFC_SERVER_FINAL),
        Err(AuthError::UnexpectedMessage(_))
    ));
    let mut scram = rfc_client();
    scram.handle_server_first(RFC_SERVER_FIRST).unwrap();
    assert!(matches!(
        scram.handle_server_first(RFC_SERVER_FIRST),
        Err(AuthError::UnexpectedMessage(_))
    ));
}

#[test]
fn mutated_messages_never_panic() {
    // Every single-byte mutation and truncation of valid messages is an error or, for the
    // server-first-message, a still well-formed message; never a panic. A one-iteration
    // server-first-message keeps this fast.
    const CHEAP_FIRST: &[u8] = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1";
    let mut seen_errors = 0;
    for pos in 0..CHEAP_FIRST.len() {
        for replacement in [b',', b'=', 0, 0xff, b'A'] {
            let mut msg = CHEAP_FIRST.to_vec();
            msg[pos] = replacement;
            if rfc_client().handle_server_first(&msg).is_err() {
                seen_errors += 1;
            }
        }
        assert!(
            rfc_client()
                .handle_server_first(&CHEAP_FIRST[..pos])
                .is_err(),
            "cut at {pos}"
        );
    }
    assert!(rfc_client().handle_server_first(CHEAP_FIRST).is_ok());
    assert!(seen_errors > CHEAP_FIRST.len());

    let mut prepared = rfc_client();
    prepared.handle_server_first(RFC_SERVER_FIRST).unwrap();
    for pos in 0..RFC_SERVER_FINAL.len() {
        let mut msg = RFC_SERVER_FINAL.to_vec();
        msg[pos] ^= 0x01;
        assert!(
            prepared.clone().handle_server_final(&msg).is_err(),
            "flip at {pos}"
        );
        assert!(
            prepared
                .clone()
                .handle_server_final(&RFC_SERVER_FINAL[..pos])
                .is_err()
        );
    }
    prepared.handle_server_final(RFC_SERVER_FINAL).unwrap();
}

#[test]
fn nonces() {
    assert!(ClientNonce::new("").is_err());
    assert!(ClientNonce::new("a,b").is_err());
    assert!(ClientNonce::new("a b").is_err());
    assert!(ClientNonce::new("é").is_err());
    let a = ClientNonce::random().unwrap();
    let b = ClientNonce::random().unwrap();
    assert_eq!(a.as_str().len(), 24);
    assert_ne!(a, b);
    assert!(ClientNonce::new(a.as_str()).is_ok());
    assert_eq!(ClientNonce::from_random_bytes(&[0xff; 3]).as_str(), "////");
}

#[test]
fn debug_hides_the_password() {
    let scram = ScramClient::new(
        "user",
        &Password::from("pencil"),
        ScramBinding::NotSupported,
        ClientNonce::new(RFC_NONCE).unwrap(),
    );
    let debug = format!("{scram:?}");
    assert!(!debug.contains("pencil"));
    assert!(debug.contains("await-server-first"));
}

/// Issue 12 item 8: a hostile server sends the largest count the grammar allows. Before the
/// cap this ran PBKDF2 4 294 967 295 times (hours); now it is refused before any derivation.
#[test]
fn hostile_iteration_count_is_refused_before_deriving() {
    let mut scram = rfc_client();
    let error = scram
        .handle_server_first(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4294967295",
        )
        .unwrap_err();
    assert_eq!(
        error,
        AuthError::ScramIterationsTooHigh {
            iterations: u32::MAX,
            max: DEFAULT_MAX_SCRAM_ITERATIONS
        }
    );
    assert!(error.to_string().contains("4294967295"), "{error}");
    // The exchange is dead afterwards.
    assert!(matches!(
        scram.handle_server_final(RFC_SERVER_FINAL),
        Err(AuthError::UnexpectedMessage(_))
    ));
}

#[test]
fn the_iteration_cap_is_configurable_and_inclusive() {
    let mut at_cap = rfc_client().with_max_iterations(4096);
    assert_eq!(
        at_cap.handle_server_first(RFC_SERVER_FIRST).unwrap(),
        RFC_CLIENT_FINAL
    );
    let mut below = rfc_client().with_max_iterations(4095);
    assert_eq!(
        below.handle_server_first(RFC_SERVER_FIRST).unwrap_err(),
        AuthError::ScramIterationsTooHigh {
            iterations: 4096,
            max: 4095
        }
    );
}

/// The split API (server_first → derive elsewhere → client_final) gives the RFC's answer.
#[test]
fn split_derivation_matches_the_one_step_api() {
    let mut scram = rfc_client();
    let derivation = scram.server_first(RFC_SERVER_FIRST).unwrap();
    assert_eq!(derivation.iterations(), 4096);
    assert!(!format!("{derivation:?}").contains("pencil"));
    assert!(format!("{scram:?}").contains("deriving-key"));
    let salted = std::thread::spawn(move || derivation.derive())
        .join()
        .unwrap();
    assert_eq!(format!("{salted:?}"), "SaltedPassword(<redacted>)");
    assert_eq!(scram.client_final(&salted).unwrap(), RFC_CLIENT_FINAL);
    scram.handle_server_final(RFC_SERVER_FINAL).unwrap();
    assert!(scram.is_complete());
    // client_final without a pending derivation is out of order.
    assert!(matches!(
        rfc_client().client_final(&salted),
        Err(AuthError::UnexpectedMessage(_))
    ));
}
