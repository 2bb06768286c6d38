//! Delivery headers: what GitHub sends is read, anything odd is refused with the header named.

use booty_event::{
    DELIVERY_HEADER, Delivery, DeliveryId, DeliveryIdError, EVENT_HEADER, HeaderError,
};

const GUID: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

/// Looks headers up by lowercase name in a list of `(name, value)` pairs, like a `HeaderMap` would.
fn from_pairs(pairs: &[(&str, &[u8])]) -> Result<Delivery, HeaderError> {
    Delivery::from_headers(|name: &str| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    })
}

#[test]
fn every_github_header_is_read() {
    let delivery = from_pairs(&[
        ("x-github-event", b"issues"),
        ("x-github-delivery", GUID.as_bytes()),
        ("x-github-hook-id", b"292430182"),
        ("x-github-hook-installation-target-type", b"integration"),
        ("x-github-hook-installation-target-id", b"79929171"),
        ("user-agent", b"GitHub-Hookshot/044aadd"),
        ("x-github-enterprise-host", b"ghe.example.com"),
        ("x-github-enterprise-version", b"3.14.0"),
        ("x-hub-signature-256", b"sha256=ignored-here"),
    ])
    .unwrap();
    assert_eq!(delivery.event(), "issues");
    assert_eq!(delivery.id().as_str(), GUID);
    assert_eq!(delivery.id().to_string(), GUID);
    assert_eq!(delivery.hook_id(), Some(292_430_182));
    assert_eq!(delivery.installation_target_type(), Some("integration"));
    assert_eq!(delivery.installation_target_id(), Some(79_929_171));
    assert_eq!(delivery.user_agent(), Some("GitHub-Hookshot/044aadd"));
    assert_eq!(delivery.enterprise_host(), Some("ghe.example.com"));
    assert_eq!(delivery.enterprise_version(), Some("3.14.0"));
}

#[test]
fn optional_headers_may_be_absent() {
    let delivery =
        from_pairs(&[(EVENT_HEADER, b"ping"), (DELIVERY_HEADER, GUID.as_bytes())]).unwrap();
    assert_eq!(delivery.event(), "ping");
    assert_eq!(delivery.hook_id(), None);
    assert_eq!(delivery.installation_target_type(), None);
    assert_eq!(delivery.installation_target_id(), None);
    assert_eq!(delivery.user_agent(), None);
    assert_eq!(delivery.enterprise_host(), None);
    assert_eq!(delivery.enterprise_version(), None);
}

/// Header pairs, as `(lowercase name, raw value)`.
type Pairs<'a> = &'a [(&'a str, &'a [u8])];

fn assert_refused(cases: &[(Pairs<'_>, HeaderError, &str)]) {
    for (index, (pairs, error, message)) in cases.iter().enumerate() {
        let err = from_pairs(pairs).expect_err("the headers are refused");
        assert_eq!(&err, error, "case {index}");
        assert_eq!(err.to_string(), *message, "case {index}");
        assert!(
            message.contains(err.header()),
            "case {index}: {}",
            err.header()
        );
    }
}

#[test]
fn missing_headers_are_named() {
    let guid = GUID.as_bytes();
    assert_refused(&[
        (
            &[("x-github-delivery", guid)],
            HeaderError::Missing {
                header: "X-GitHub-Event",
            },
            "missing X-GitHub-Event header",
        ),
        (
            &[("x-github-event", b"issues")],
            HeaderError::Missing {
                header: "X-GitHub-Delivery",
            },
            "missing X-GitHub-Delivery header",
        ),
        (
            &[],
            HeaderError::Missing {
                header: "X-GitHub-Event",
            },
            "missing X-GitHub-Event header",
        ),
        // Header names are looked up lowercase, as `http::HeaderMap` stores them.
        (
            &[("X-GitHub-Event", b"issues"), ("x-github-delivery", guid)],
            HeaderError::Missing {
                header: "X-GitHub-Event",
            },
            "missing X-GitHub-Event header",
        ),
    ]);
}

#[test]
fn odd_delivery_ids_are_refused_without_being_echoed() {
    let long = "a".repeat(65);
    let rule = "only ASCII letters, digits and `-` are allowed";
    let with = |id: &'static [u8]| -> [(&'static str, &'static [u8]); 2] {
        [("x-github-event", b"issues"), ("x-github-delivery", id)]
    };
    let cases = [
        (
            b"".as_slice(),
            DeliveryIdError::Empty,
            "the delivery id is empty".to_owned(),
        ),
        (
            b"../../etc/passwd",
            DeliveryIdError::Byte {
                position: 0,
                byte: b'.',
            },
            format!("the delivery id has `.` at byte 0; {rule}"),
        ),
        (
            b"72d3162e cc78",
            DeliveryIdError::Byte {
                position: 8,
                byte: b' ',
            },
            format!("the delivery id has byte 0x20 at byte 8; {rule}"),
        ),
        (
            b"abc\r\nx-injected: 1",
            DeliveryIdError::Byte {
                position: 3,
                byte: b'\r',
            },
            format!("the delivery id has byte 0x0d at byte 3; {rule}"),
        ),
        (
            "caf\u{e9}".as_bytes(),
            DeliveryIdError::Byte {
                position: 3,
                byte: 0xc3,
            },
            format!("the delivery id has byte 0xc3 at byte 3; {rule}"),
        ),
        (
            b"{72d3162e}",
            DeliveryIdError::Byte {
                position: 0,
                byte: b'{',
            },
            format!("the delivery id has `{{` at byte 0; {rule}"),
        ),
        (
            b"72d3162e_cc78",
            DeliveryIdError::Byte {
                position: 8,
                byte: b'_',
            },
            format!("the delivery id has `_` at byte 8; {rule}"),
        ),
    ];
    for (id, error, message) in cases {
        let pairs = with(id);
        let message = format!("invalid X-GitHub-Delivery header: {message}");
        assert_refused(&[(&pairs, HeaderError::DeliveryId(error), &message)]);
    }
    let pairs = [
        ("x-github-event", &b"issues"[..]),
        ("x-github-delivery", long.as_bytes()),
    ];
    assert_refused(&[(
        &pairs,
        HeaderError::DeliveryId(DeliveryIdError::TooLong { len: 65 }),
        "invalid X-GitHub-Delivery header: the delivery id is 65 bytes long, more than 64",
    )]);
}

#[test]
fn bad_event_names_and_informational_headers_are_refused() {
    let guid = GUID.as_bytes();
    let event_name = HeaderError::Invalid {
        header: "X-GitHub-Event",
        reason: "not an event name (1 to 64 ASCII letters, digits and `_`)",
    };
    let event_message =
        "invalid X-GitHub-Event header: not an event name (1 to 64 ASCII letters, digits and `_`)";
    let not_number = "not a decimal number that fits in 64 bits";
    assert_refused(&[
        (
            &[("x-github-event", b""), ("x-github-delivery", guid)],
            event_name.clone(),
            event_message,
        ),
        (
            &[("x-github-event", b"issues\n"), ("x-github-delivery", guid)],
            event_name.clone(),
            event_message,
        ),
        (
            &[
                ("x-github-event", b"pull-request.opened"),
                ("x-github-delivery", guid),
            ],
            event_name,
            event_message,
        ),
        (
            &[
                ("x-github-event", b"issues"),
                ("x-github-delivery", guid),
                ("x-github-hook-id", b"12ab"),
            ],
            HeaderError::Invalid {
                header: "X-GitHub-Hook-ID",
                reason: not_number,
            },
            "invalid X-GitHub-Hook-ID header: not a decimal number that fits in 64 bits",
        ),
        (
            &[
                ("x-github-event", b"issues"),
                ("x-github-delivery", guid),
                ("x-github-hook-installation-target-id", b"-1"),
            ],
            HeaderError::Invalid {
                header: "X-GitHub-Hook-Installation-Target-ID",
                reason: not_number,
            },
            "invalid X-GitHub-Hook-Installation-Target-ID header: not a decimal number that fits in 64 bits",
        ),
        (
            &[
                ("x-github-event", b"issues"),
                ("x-github-delivery", guid),
                ("user-agent", b"Hookshot/\xff"),
            ],
            HeaderError::Invalid {
                header: "User-Agent",
                reason: "not valid UTF-8",
            },
            "invalid User-Agent header: not valid UTF-8",
        ),
    ]);
}

#[test]
fn the_longest_event_name_and_delivery_id_pass() {
    let event = "a_".repeat(32);
    let id = "0-".repeat(32);
    let delivery = from_pairs(&[
        (EVENT_HEADER, event.as_bytes()),
        (DELIVERY_HEADER, id.as_bytes()),
    ])
    .unwrap();
    assert_eq!(delivery.event(), event);
    assert_eq!(delivery.id().as_str(), id);
    let longer = format!("{event}x");
    assert!(
        from_pairs(&[
            (EVENT_HEADER, longer.as_bytes()),
            (DELIVERY_HEADER, id.as_bytes())
        ])
        .is_err()
    );
}

#[test]
fn delivery_ids_round_trip_through_serde_and_refuse_bad_stored_values() {
    let id: DeliveryId = GUID.parse().unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, format!("\"{GUID}\""));
    assert_eq!(serde_json::from_str::<DeliveryId>(&json).unwrap(), id);
    for bad in ["\"\"", "\"a/b\"", "\"a\\nb\"", "1"] {
        assert!(serde_json::from_str::<DeliveryId>(bad).is_err(), "{bad}");
    }
    assert_eq!(DeliveryId::try_from(GUID.to_owned()).unwrap(), id);
}
