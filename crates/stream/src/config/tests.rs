use super::*;

fn v(major: u32) -> ServerVersion {
    ServerVersion::from_num(major * 10_000 + 3)
}

fn base() -> LogicalConfigBuilder {
    LogicalConfig::builder().slot("s1").publication("p")
}

#[test]
fn default_protocol_is_the_servers_highest() {
    let config = base().build().unwrap();
    let got: Vec<u32> = (14..=18)
        .map(|m| config.negotiate(v(m)).unwrap().as_u32())
        .collect();
    assert_eq!(got, [2, 3, 4, 4, 4]);
}

#[test]
fn invalid_combinations_are_typed_errors() {
    let parallel = base().streaming(Streaming::Parallel).build().unwrap();
    assert!(matches!(
        parallel.negotiate(v(15)),
        Err(ConfigError::Unsupported { needs: 16, .. })
    ));
    assert!(parallel.negotiate(v(16)).is_ok());
    let parallel_v3 = base()
        .streaming(Streaming::Parallel)
        .proto_version(ProtocolVersion::V3)
        .build()
        .unwrap();
    assert!(matches!(
        parallel_v3.negotiate(v(17)),
        Err(ConfigError::ProtocolTooOld {
            needs: 4,
            requested: 3,
            ..
        })
    ));
    let two_phase = base().two_phase(true).build().unwrap();
    let error = two_phase.negotiate(v(14)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "two-phase decoding needs PostgreSQL 15; server is 14.3"
    );
    assert!(two_phase.negotiate(v(15)).is_ok());
    let origin = base().origin(OriginFilter::None).build().unwrap();
    assert!(matches!(
        origin.negotiate(v(15)),
        Err(ConfigError::Unsupported { needs: 16, .. })
    ));
    let too_new = base().proto_version(ProtocolVersion::V4).build().unwrap();
    assert!(matches!(
        too_new.negotiate(v(15)),
        Err(ConfigError::ProtocolTooNew {
            requested: 4,
            needs: 16,
            ..
        })
    ));
    let streaming_v1 = base()
        .streaming(Streaming::On)
        .proto_version(ProtocolVersion::V1)
        .build()
        .unwrap();
    assert!(matches!(
        streaming_v1.negotiate(v(16)),
        Err(ConfigError::ProtocolTooOld { needs: 2, .. })
    ));
}

#[test]
fn build_checks_what_needs_no_server() {
    assert!(matches!(
        LogicalConfig::builder().publication("p").build(),
        Err(ConfigError::SlotName(_))
    ));
    assert!(matches!(
        LogicalConfig::builder()
            .slot("Bad")
            .publication("p")
            .build(),
        Err(ConfigError::SlotName(_))
    ));
    assert!(matches!(
        LogicalConfig::builder().slot("s").build(),
        Err(ConfigError::NoPublication)
    ));
    assert!(matches!(
        base().publication("a\0b").build(),
        Err(ConfigError::PublicationName { .. })
    ));
    assert!(matches!(
        base().status_interval(Duration::ZERO).build(),
        Err(ConfigError::InvalidValue { .. })
    ));
    assert!(matches!(
        base().channel_capacity(0).build(),
        Err(ConfigError::InvalidValue { .. })
    ));
    assert!(matches!(
        base()
            .read_timeout(ReadTimeout::Fixed(Duration::ZERO))
            .build(),
        Err(ConfigError::InvalidValue { .. })
    ));
    assert!(matches!(
        base().conninfo("host=x sslmode=sometimes").build(),
        Err(ConfigError::ConnInfo(_))
    ));
    assert!(
        base()
            .conninfo("host=x user=u")
            .build()
            .unwrap()
            .connection
            .is_some()
    );
}

#[test]
fn start_command_quotes_names_and_lists_options() {
    let config = base()
        .publication("we\"ird'name")
        .streaming(Streaming::Parallel)
        .binary(true)
        .messages(true)
        .two_phase(true)
        .origin(OriginFilter::None)
        .build()
        .unwrap();
    assert_eq!(
        config.start_replication_command(ProtocolVersion::V4, Lsn(0x1_0000_00AB)),
        "START_REPLICATION SLOT \"s1\" LOGICAL 1/AB (proto_version '4', \
         publication_names '\"p\",\"we\"\"ird''name\"', streaming 'parallel', binary 'true', \
         messages 'true', two_phase 'true', origin 'none')"
    );
    let plain = base().build().unwrap();
    assert_eq!(
        plain.start_replication_command(ProtocolVersion::V2, Lsn(0)),
        "START_REPLICATION SLOT \"s1\" LOGICAL 0/0 (proto_version '2', publication_names '\"p\"')"
    );
}

#[test]
fn a_backend_this_build_lacks_is_rejected_by_build() {
    let libpq = base().backend(Backend::Libpq).build();
    if Backend::Libpq.is_available() {
        assert!(libpq.is_ok());
    } else {
        assert!(matches!(
            libpq,
            Err(ConfigError::BackendUnavailable {
                backend: Backend::Libpq
            })
        ));
    }
    assert!(base().backend(Backend::Native).build().is_ok());
}

#[test]
fn native_reads_default_to_16_kib_and_can_be_changed() {
    let read_size = |builder: LogicalConfigBuilder| {
        let config = builder.conninfo("host=localhost user=u").build().unwrap();
        config.connection.map(|(c, _)| c.max_read_size)
    };
    assert_eq!(read_size(base()), Some(Some(DEFAULT_MAX_READ_SIZE)));
    assert_eq!(DEFAULT_MAX_READ_SIZE, 16 * 1024);
    assert_eq!(read_size(base().max_read_size(4096)), Some(Some(4096)));
    assert!(base().max_read_size(0).build().is_err());
}
