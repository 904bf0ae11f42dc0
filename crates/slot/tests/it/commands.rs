//! IDENTIFY_SYSTEM, SHOW, READ/DROP, slot health, publications.

use pg_walstream_slot::{
    AlterSlot, CreateSlot, Operation, Publication, PublicationTarget, PublishedTable, SlotError,
    SlotName, SlotType, WalStatus, drop_publication, drop_replication_slot,
    drop_replication_slot_if_exists, identify_system, list_slots, read_replication_slot, show,
    slot_health,
};
use pg_walstream_testkit::{servers, unique_name};
use pg_walstream_transport::{SqlState, Transport};

use crate::{replication, sql};

#[tokio::test]
async fn identify_system_matches_the_server() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_identify").await;
        let admin = server.admin(&db).await;
        let row = admin
            .query_one(
                "SELECT system_identifier::text FROM pg_control_system()",
                &[],
            )
            .await
            .unwrap();
        let expected: String = row.get(0);

        let mut logical = replication(server, &db, "database").await;
        let identity = identify_system(&mut logical).await.unwrap();
        assert_eq!(
            identity.system_id.to_string(),
            expected,
            "PostgreSQL {version}"
        );
        assert_eq!(identity.timeline, 1);
        assert_eq!(identity.dbname.as_deref(), Some(db.as_str()));
        assert!(identity.xlogpos.0 > 0);

        let mut physical = replication(server, &db, "true").await;
        let identity = identify_system(&mut physical).await.unwrap();
        assert_eq!(
            identity.dbname, None,
            "PostgreSQL {version}: physical connections have no database"
        );

        assert_eq!(show(&mut physical, "wal_level").await.unwrap(), "logical");
        assert_eq!(
            show(&mut physical, "max_replication_slots").await.unwrap(),
            "200"
        );
        let error = show(&mut physical, "no_such_setting").await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(SqlState::UNDEFINED_OBJECT),
            "PostgreSQL {version}: {error}"
        );
    }
}

#[tokio::test]
async fn read_drop_and_health_of_slots() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_manage").await;
        let mut conn = replication(server, &db, "database").await;
        let name = SlotName::new(unique_name("manage")).unwrap();
        let created = CreateSlot::logical(name.clone())
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(created.slot_name, name.as_str());
        assert_eq!(created.output_plugin.as_deref(), Some("pgoutput"));

        let physical = SlotName::new(unique_name("physical")).unwrap();
        CreateSlot::physical(physical.clone())
            .reserve_wal()
            .temporary()
            .execute(&mut conn)
            .await
            .unwrap();
        if version >= 15 {
            let position = read_replication_slot(&mut conn, &physical)
                .await
                .unwrap()
                .expect("the slot exists");
            assert_eq!(position.slot_type, SlotType::Physical);
            assert!(position.restart_lsn.is_some());
            assert_eq!(position.restart_tli, Some(1));
            let missing = SlotName::new(unique_name("missing")).unwrap();
            assert_eq!(
                read_replication_slot(&mut conn, &missing).await.unwrap(),
                None
            );
            let logical = read_replication_slot(&mut conn, &name).await.unwrap_err();
            assert_eq!(
                logical.code(),
                Some(SqlState::FEATURE_NOT_SUPPORTED),
                "PostgreSQL {version}: {logical}"
            );
        } else {
            let error = read_replication_slot(&mut conn, &physical)
                .await
                .unwrap_err();
            assert!(
                matches!(error, SlotError::Unsupported { needs: 15, .. }),
                "{error}"
            );
        }

        let mut sql_conn = sql(server, &db).await;
        let health = slot_health(&mut sql_conn, &name)
            .await
            .unwrap()
            .expect("health row");
        assert_eq!(health.slot_type, SlotType::Logical);
        assert_eq!(health.database.as_deref(), Some(db.as_str()));
        assert!(!health.active && !health.temporary);
        assert_eq!(health.wal_status, Some(WalStatus::Reserved));
        assert!(health.is_usable());
        assert_eq!(health.confirmed_flush_lsn, created.consistent_point);
        assert_eq!(
            health.conflicting.is_some(),
            version >= 16,
            "PostgreSQL {version}: conflicting"
        );
        assert_eq!(
            health.failover.is_some(),
            version >= 17,
            "PostgreSQL {version}: failover"
        );
        assert!(
            list_slots(&mut sql_conn)
                .await
                .unwrap()
                .iter()
                .any(|slot| slot.slot_name == name.as_str())
        );

        let duplicate = CreateSlot::logical(name.clone())
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(
            matches!(duplicate, SlotError::AlreadyExists(_)),
            "{duplicate}"
        );
        assert_eq!(
            CreateSlot::logical(name.clone())
                .execute_if_not_exists(&mut conn)
                .await
                .unwrap(),
            None
        );

        drop_replication_slot(&mut conn, &name, false)
            .await
            .unwrap();
        assert_eq!(slot_health(&mut sql_conn, &name).await.unwrap(), None);
        let gone = drop_replication_slot(&mut conn, &name, false)
            .await
            .unwrap_err();
        assert!(
            matches!(gone, SlotError::DoesNotExist(_)),
            "PostgreSQL {version}: {gone}"
        );
        assert!(
            !drop_replication_slot_if_exists(&mut conn, &name, false)
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn dropping_an_active_slot_fails_without_wait_and_waits_with_it() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_active").await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t")
            .await
            .unwrap();
        let name = SlotName::new(unique_name("active")).unwrap();
        let mut owner = replication(server, &db, "database").await;
        CreateSlot::logical(name.clone())
            .execute(&mut owner)
            .await
            .unwrap();
        Transport::copy_both(
            &mut owner,
            &format!("START_REPLICATION SLOT \"{name}\" LOGICAL 0/0 (proto_version '1', publication_names 'p')"),
        )
        .await
        .unwrap();

        let mut other = replication(server, &db, "database").await;
        let in_use = drop_replication_slot(&mut other, &name, false)
            .await
            .unwrap_err();
        assert!(
            matches!(in_use, SlotError::InUse(_)),
            "PostgreSQL {version}: {in_use}"
        );

        // With WAIT the drop blocks until the owner lets go of the slot: wait until the
        // server reports the dropping walsender waiting for the slot (no fixed sleep), check
        // the call has not returned, then release the slot.
        let slot_name = name.to_string();
        let waiter =
            tokio::spawn(async move { drop_replication_slot(&mut other, &name, true).await });
        let mut polls = 0;
        loop {
            let waiting: bool = admin
                .query_one(
                    "SELECT EXISTS (SELECT FROM pg_stat_activity \
                     WHERE wait_event = 'ReplicationSlotDrop' AND strpos(query, $1) > 0)",
                    &[&slot_name],
                )
                .await
                .unwrap()
                .get(0);
            if waiting {
                break;
            }
            assert!(
                !waiter.is_finished(),
                "PostgreSQL {version}: DROP ... WAIT returned while the slot was active"
            );
            // A guard against hanging forever, not a timing assumption.
            polls += 1;
            assert!(
                polls < 6000,
                "PostgreSQL {version}: DROP ... WAIT never waited"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            !waiter.is_finished(),
            "PostgreSQL {version}: DROP ... WAIT returned while the slot was active"
        );
        drop(owner);
        // The walsender releases the slot when it notices the closed connection; the bound
        // only keeps a broken server from hanging the suite.
        let dropped = tokio::time::timeout(std::time::Duration::from_secs(120), waiter).await;
        dropped
            .expect("DROP ... WAIT finished after the owner left")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn publications_are_created_with_the_requested_properties() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_pub").await;
        let admin = server.admin(&db).await;
        admin.batch_execute("CREATE SCHEMA shop; CREATE TABLE shop.orders (id int PRIMARY KEY, total int, note text)").await.unwrap();
        let mut conn = sql(server, &db).await;
        let mut table = PublishedTable::qualified("shop", "orders");
        if version >= 15 {
            table = table.columns(&["id", "total"]).row_filter("total > 0");
        }
        Publication::new("orders \"pub\"", PublicationTarget::Tables(vec![table]))
            .publish(&[Operation::Insert, Operation::Update])
            .via_partition_root(true)
            .create(&mut conn)
            .await
            .unwrap();
        let row = admin
            .query_one("SELECT pubinsert, pubupdate, pubdelete, pubviaroot FROM pg_publication WHERE pubname = 'orders \"pub\"'", &[])
            .await
            .unwrap();
        let flags: (bool, bool, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(flags, (true, true, false, true), "PostgreSQL {version}");
        if version >= 15 {
            let row = admin
                .query_one("SELECT attnames::text, rowfilter FROM pg_publication_tables WHERE pubname = 'orders \"pub\"'", &[])
                .await
                .unwrap();
            let (columns, filter): (String, String) = (row.get(0), row.get(1));
            assert_eq!(columns, "{id,total}");
            assert!(filter.contains("total > 0"), "{filter}");
        }
        let again = Publication::new("orders \"pub\"", PublicationTarget::AllTables)
            .create(&mut conn)
            .await
            .unwrap_err();
        assert!(
            matches!(again, SlotError::AlreadyExists(_)),
            "PostgreSQL {version}: {again}"
        );
        drop_publication(&mut conn, "orders \"pub\"", false)
            .await
            .unwrap();
        drop_publication(&mut conn, "orders \"pub\"", true)
            .await
            .unwrap();
        assert!(matches!(
            drop_publication(&mut conn, "orders \"pub\"", false).await,
            Err(SlotError::DoesNotExist(_))
        ));
    }
}

#[tokio::test]
async fn alter_replication_slot_changes_failover_and_two_phase_where_supported() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_alter").await;
        let admin = server.admin(&db).await;
        let mut conn = replication(server, &db, "database").await;
        let name = SlotName::new(unique_name("alter")).unwrap();
        CreateSlot::logical(name.clone())
            .execute(&mut conn)
            .await
            .unwrap();
        let failover_on = AlterSlot {
            failover: Some(true),
            two_phase: None,
        };
        let result = failover_on.execute(&mut conn, &name).await;
        if version < 17 {
            assert!(
                matches!(result, Err(SlotError::Unsupported { needs: 17, .. })),
                "PostgreSQL {version}: {result:?}"
            );
            continue;
        }
        result.unwrap_or_else(|error| panic!("PostgreSQL {version}: {error}"));
        let failover: bool = admin
            .query_one(
                "SELECT failover FROM pg_replication_slots WHERE slot_name = $1",
                &[&name.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        assert!(failover, "PostgreSQL {version}: failover after ALTER");
        let two_phase_on = AlterSlot {
            failover: None,
            two_phase: Some(true),
        };
        let result = two_phase_on.execute(&mut conn, &name).await;
        if version < 18 {
            assert!(
                matches!(result, Err(SlotError::Unsupported { needs: 18, .. })),
                "PostgreSQL {version}: {result:?}"
            );
            continue;
        }
        result.unwrap_or_else(|error| panic!("PostgreSQL {version}: {error}"));
        let two_phase: bool = admin
            .query_one(
                "SELECT two_phase FROM pg_replication_slots WHERE slot_name = $1",
                &[&name.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        assert!(two_phase, "PostgreSQL {version}: two_phase after ALTER");
        let missing = SlotName::new(unique_name("nope")).unwrap();
        assert!(matches!(
            failover_on.execute(&mut conn, &missing).await,
            Err(SlotError::DoesNotExist(_))
        ));
    }
}

#[tokio::test]
async fn privileges_and_hostile_names_are_typed_errors_not_injections() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_priv").await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute("CREATE TABLE victim (id int)")
            .await
            .unwrap();
        // A non-superuser may not publish all tables.
        let mut user_conn = replication(server, &db, "database").await;
        let denied = Publication::new("everything", PublicationTarget::AllTables)
            .create(&mut user_conn)
            .await
            .unwrap_err();
        assert!(
            matches!(denied, SlotError::InsufficientPrivilege(_)),
            "PostgreSQL {version}: {denied}"
        );
        // Replication commands cannot quote a double quote: refused before sending.
        let error = show(&mut user_conn, "x\"; DROP TABLE victim; --")
            .await
            .unwrap_err();
        assert!(
            matches!(error, SlotError::InvalidName { .. }),
            "PostgreSQL {version}: {error}"
        );
        // Other odd characters are quoted: just the name of a missing setting.
        let error = show(&mut user_conn, "x; DROP TABLE victim; --")
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(SqlState::UNDEFINED_OBJECT),
            "PostgreSQL {version}: {error}"
        );
        assert!(show(&mut user_conn, "bad\0name").await.is_err());
        let mut sql_conn = sql(server, &db).await;
        sql_conn
            .simple_query("SET standard_conforming_strings = off")
            .await
            .unwrap();
        let hostile = "p\\'; DROP TABLE victim; --\"";
        Publication::new(
            hostile,
            PublicationTarget::Tables(vec![PublishedTable::new("victim")]),
        )
        .create(&mut sql_conn)
        .await
        .unwrap();
        let count: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_publication WHERE pubname = $1",
                &[&hostile],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            count, 1,
            "PostgreSQL {version}: the publication has exactly the hostile name"
        );
        let still_there: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relname = 'victim'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(still_there, 1, "PostgreSQL {version}: nothing was injected");
    }
}
