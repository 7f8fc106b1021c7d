//! Decoder for the `pgoutput` logical replication protocol (version 1, the
//! text-format tuples every supported server sends), as documented in
//! PostgreSQL's "Logical Replication Message Formats".
//!
//! Every message kind a version-1 stream can carry is decoded: Begin, Commit,
//! Origin, Relation, Type, Insert, Update (with the old key or the old tuple),
//! Delete, Truncate and logical decoding Messages. Column values stay as the
//! server's text output (what `COPY ... TEXT` and SQL literals take back),
//! with NULL and unchanged-TOAST markers kept apart: an update that did not
//! touch a TOASTed column must leave it alone, not null it.

use bytes::{Buf, Bytes};
use ferry_common::position::Lsn;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(String);

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// The column is TOASTed and did not change; its value was not sent.
    UnchangedToast,
    Text(Bytes),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key sent for updates and deletes).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub id: u32,
    pub schema: String,
    pub name: String,
    /// `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// Only the replica identity columns (the key changed, or a delete).
    Key(Vec<Value>),
    /// The whole old row (REPLICA IDENTITY FULL).
    Full(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Begin {
        /// LSN of the commit record: the transaction's place in commit order.
        final_lsn: Lsn,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        /// End of the commit record: the position to resume after.
        end_lsn: Lsn,
        commit_time: i64,
    },
    Origin {
        commit_lsn: Lsn,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: u32,
        schema: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<Value>,
    },
    Update {
        relation: u32,
        old: Option<OldTuple>,
        new: Vec<Value>,
    },
    Delete {
        relation: u32,
        old: OldTuple,
    },
    Truncate {
        relations: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
    /// `pg_logical_emit_message`; Ferry uses transactional ones as marks.
    Logical {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize, what: &str) -> Result<(), DecodeError> {
        if self.0.remaining() < n {
            return Err(DecodeError(format!("truncated while reading {what}")));
        }
        Ok(())
    }
    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        self.need(1, what)?;
        Ok(self.0.get_u8())
    }
    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        self.need(2, what)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        self.need(4, what)?;
        Ok(self.0.get_u32())
    }
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn lsn(&mut self, what: &str) -> Result<Lsn, DecodeError> {
        self.need(8, what)?;
        Ok(Lsn(self.0.get_u64()))
    }
    fn cstr(&mut self, what: &str) -> Result<String, DecodeError> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| DecodeError(format!("unterminated string in {what}")))?;
        let s = String::from_utf8(self.0.split_to(end).to_vec())
            .map_err(|_| DecodeError(format!("{what} is not UTF-8")))?;
        self.0.advance(1);
        Ok(s)
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<Bytes, DecodeError> {
        self.need(n, what)?;
        Ok(self.0.split_to(n))
    }
    fn tuple(&mut self) -> Result<Vec<Value>, DecodeError> {
        let n = self.i16("tuple column count")?;
        let mut values = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            values.push(match self.u8("tuple column kind")? {
                b'n' => Value::Null,
                b'u' => Value::UnchangedToast,
                b't' | b'b' => {
                    let len = self.i32("value length")?;
                    if len < 0 {
                        return Err(DecodeError("negative value length".into()));
                    }
                    Value::Text(self.bytes(len as usize, "value")?)
                }
                k => return Err(DecodeError(format!("unknown tuple column kind '{}'", k as char))),
            });
        }
        Ok(values)
    }
}

pub fn decode(data: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader(data);
    let tag = r.u8("message tag")?;
    Ok(match tag {
        b'B' => Message::Begin {
            final_lsn: r.lsn("Begin final LSN")?,
            commit_time: r.i64("Begin commit time")?,
            xid: r.u32("Begin xid")?,
        },
        b'C' => {
            let _flags = r.u8("Commit flags")?;
            Message::Commit {
                commit_lsn: r.lsn("Commit LSN")?,
                end_lsn: r.lsn("Commit end LSN")?,
                commit_time: r.i64("Commit time")?,
            }
        }
        b'O' => Message::Origin {
            commit_lsn: r.lsn("Origin LSN")?,
            name: r.cstr("Origin name")?,
        },
        b'R' => {
            let id = r.u32("Relation id")?;
            let schema = r.cstr("Relation namespace")?;
            let name = r.cstr("Relation name")?;
            let replica_identity = r.u8("Relation replica identity")?;
            let n = r.i16("Relation column count")?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8("column flags")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.cstr("column name")?,
                    type_oid: r.u32("column type")?,
                    type_modifier: r.i32("column type modifier")?,
                });
            }
            Message::Relation(Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32("Type oid")?,
            schema: r.cstr("Type namespace")?,
            name: r.cstr("Type name")?,
        },
        b'I' => {
            let relation = r.u32("Insert relation")?;
            match r.u8("Insert tuple tag")? {
                b'N' => Message::Insert {
                    relation,
                    new: r.tuple()?,
                },
                t => return Err(DecodeError(format!("Insert: expected 'N', got '{}'", t as char))),
            }
        }
        b'U' => {
            let relation = r.u32("Update relation")?;
            let mut old = None;
            let mut tag = r.u8("Update tuple tag")?;
            if tag == b'K' || tag == b'O' {
                let t = r.tuple()?;
                old = Some(if tag == b'K' {
                    OldTuple::Key(t)
                } else {
                    OldTuple::Full(t)
                });
                tag = r.u8("Update new tuple tag")?;
            }
            if tag != b'N' {
                return Err(DecodeError(format!("Update: expected 'N', got '{}'", tag as char)));
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32("Delete relation")?;
            let old = match r.u8("Delete tuple tag")? {
                b'K' => OldTuple::Key(r.tuple()?),
                b'O' => OldTuple::Full(r.tuple()?),
                t => return Err(DecodeError(format!("Delete: expected 'K' or 'O', got '{}'", t as char))),
            };
            Message::Delete { relation, old }
        }
        b'T' => {
            let n = r.i32("Truncate relation count")?;
            let options = r.u8("Truncate options")?;
            let mut relations = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                relations.push(r.u32("Truncate relation")?);
            }
            Message::Truncate {
                relations,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
            }
        }
        b'M' => {
            let flags = r.u8("Message flags")?;
            let lsn = r.lsn("Message LSN")?;
            let prefix = r.cstr("Message prefix")?;
            let len = r.i32("Message length")?;
            Message::Logical {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
                content: r.bytes(len.max(0) as usize, "Message content")?,
            }
        }
        t => return Err(DecodeError(format!("unknown message type '{}'", t as char))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn begin_message() -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(b'B');
        b.put_u64(0x1_0000_0010);
        b.put_i64(42);
        b.put_u32(777);
        b
    }

    fn commit_message() -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(b'C');
        b.put_u8(0);
        b.put_u64(10);
        b.put_u64(20);
        b.put_i64(5);
        b
    }

    /// Relation 16384, shop."Order" (id int4 key, doc text).
    fn relation_message() -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(b'R');
        b.put_u32(16384);
        b.put_slice(b"shop\0Order\0");
        b.put_u8(b'd');
        b.put_i16(2);
        b.put_u8(1);
        b.put_slice(b"id\0");
        b.put_u32(23);
        b.put_i32(-1);
        b.put_u8(0);
        b.put_slice(b"doc\0");
        b.put_u32(25);
        b.put_i32(-1);
        b
    }

    fn truncate_message() -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(b'T');
        b.put_i32(2);
        b.put_u8(3);
        b.put_u32(7);
        b.put_u32(8);
        b
    }

    fn mark_message() -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(b'M');
        b.put_u8(1);
        b.put_u64(99);
        b.put_slice(b"ferry_mark\0");
        b.put_i32(3);
        b.put_slice(b"t:1");
        b
    }

    fn tuple(b: &mut BytesMut, vals: &[Option<&str>], unchanged: &[usize]) {
        b.put_i16(vals.len() as i16);
        for (i, v) in vals.iter().enumerate() {
            if unchanged.contains(&i) {
                b.put_u8(b'u');
            } else if let Some(v) = v {
                b.put_u8(b't');
                b.put_i32(v.len() as i32);
                b.put_slice(v.as_bytes());
            } else {
                b.put_u8(b'n');
            }
        }
    }

    #[test]
    fn begin_commit() {
        let b = begin_message();
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Begin {
                final_lsn: Lsn(0x1_0000_0010),
                commit_time: 42,
                xid: 777
            }
        );
        let b = commit_message();
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Commit {
                commit_lsn: Lsn(10),
                end_lsn: Lsn(20),
                commit_time: 5
            }
        );
    }

    #[test]
    fn relation_and_update_with_old_key_and_toast() {
        let b = relation_message();
        let Message::Relation(r) = decode(b.freeze()).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!((r.schema.as_str(), r.name.as_str()), ("shop", "Order"));
        assert!(r.columns[0].key && !r.columns[1].key);

        let mut b = BytesMut::new();
        b.put_u8(b'U');
        b.put_u32(16384);
        b.put_u8(b'K');
        tuple(&mut b, &[Some("1"), None], &[]);
        b.put_u8(b'N');
        tuple(&mut b, &[Some("2"), None], &[1]);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Update {
                relation: 16384,
                old: Some(OldTuple::Key(vec![Value::Text(Bytes::from("1")), Value::Null])),
                new: vec![Value::Text(Bytes::from("2")), Value::UnchangedToast],
            }
        );
    }

    #[test]
    fn delete_truncate_message_and_errors() {
        let mut b = BytesMut::new();
        b.put_u8(b'D');
        b.put_u32(1);
        b.put_u8(b'O');
        tuple(&mut b, &[Some("x"), None], &[]);
        assert!(matches!(decode(b.freeze()).unwrap(), Message::Delete { old: OldTuple::Full(v), .. } if v.len() == 2));

        let b = truncate_message();
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Truncate {
                relations: vec![7, 8],
                cascade: true,
                restart_identity: true
            }
        );

        let b = mark_message();
        assert!(
            matches!(decode(b.freeze()).unwrap(), Message::Logical { transactional: true, prefix, .. } if prefix == "ferry_mark")
        );

        let mut b = BytesMut::new();
        b.put_u8(b'I');
        b.put_u32(1);
        b.put_u8(b'N');
        b.put_i16(1);
        b.put_u8(b't');
        b.put_i32(10);
        b.put_slice(b"abc");
        assert!(decode(b.freeze()).is_err());
        assert!(decode(Bytes::from_static(b"Z")).is_err());
    }

    /// pgoutput messages from outside: valid messages of every kind,
    /// mutated; `decode` must answer each with a message or an error.
    #[test]
    fn fuzz_pgoutput_messages() {
        let mut seeds = vec![];
        seeds.push(begin_message().to_vec());
        seeds.push(commit_message().to_vec());
        seeds.push(relation_message().to_vec());
        for (tag, old) in [(b'I', None), (b'U', Some(b'K')), (b'U', Some(b'O')), (b'D', Some(b'K'))] {
            let mut b = BytesMut::new();
            b.put_u8(tag);
            b.put_u32(16384);
            if let Some(o) = old {
                b.put_u8(o);
                tuple(&mut b, &[Some("1"), None], &[]);
            }
            if tag != b'D' {
                b.put_u8(b'N');
                tuple(&mut b, &[Some("2"), Some("ü 😀")], &[1]);
            }
            seeds.push(b.to_vec());
        }
        seeds.push(truncate_message().to_vec());
        seeds.push(mark_message().to_vec());
        for s in &seeds {
            assert!(decode(Bytes::from(s.clone())).is_ok(), "seed {s:?} decodes");
        }
        let r = ferry_common::fuzz::run("pgoutput-messages", &seeds, ferry_common::fuzz::budget(), |b| {
            let _ = decode(Bytes::copy_from_slice(b));
        });
        assert!(r.crashes.is_empty(), "{r}");
    }
}
