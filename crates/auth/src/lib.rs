//! Sans-IO PostgreSQL authentication exchanges.
//!
//! Cleartext, MD5 and SCRAM-SHA-256(-PLUS) as state machines: the caller feeds the server's
//! authentication messages in and sends the produced responses out. No I/O happens here.
