//! The scanner against hand-written and generated dumps of every syntax, cut anywhere.

use super::copy::COPY_START;
use super::tables::MAX_PREFIX;
use super::*;
use proptest::prelude::*;
use proptest::sample::Index;

/// `pg_dump` 15 plain format, by hand (`→` is a tab).
const POSTGRES_DUMP: &str = r#"--
-- PostgreSQL database dump
--

-- Dumped from database version 15.5 (Debian 15.5-0+deb12u1)
-- Dumped by pg_dump version 15.5 (Debian 15.5-0+deb12u1)

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres
--

CREATE FUNCTION public.f() RETURNS void
    LANGUAGE plpgsql
    AS $$
begin
  insert into public.pgbench_branches values (1, 0, 'x;y');
end
$$;

CREATE TABLE public."My Table" (
    "Col A" text,
    b integer
);

--
-- Data for Name: My Table; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public."My Table" ("Col A", b) FROM stdin;
two\nlines; and (parens) 'quoted'→1
tab\there→\N
back\\slash \\. not the end→3
\\.→4
→5
\.


--
-- Data for Name: empty; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.empty (a) FROM stdin;
\.


COPY public.pgbench_branches (bid, bbalance, filler) FROM stdin;
1→0→\N
2→0→\N
3→-5→COPY x FROM stdin;
\.


COPY public.nocols  FROM stdin;

\.


COPY public.one_col (t) FROM stdin;

x
\.


COPY public."a (b" (c) FROM stdin;
1
\.


--
-- Name: pgbench_branches pgbench_branches_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.pgbench_branches
    ADD CONSTRAINT pgbench_branches_pkey PRIMARY KEY (bid);

--
-- PostgreSQL database dump complete
--

"#;

/// `mariadb-dump` 10.11, by hand.
const MYSQL_DUMP: &str = r#"/*M!999999\- enable the sandbox mode */ 
-- MariaDB dump 10.19-10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: sbtest
-- ------------------------------------------------------
-- Server version→10.11.6-MariaDB-0+deb12u1

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;

--
-- Table structure for table `sbtest1`
--

DROP TABLE IF EXISTS `sbtest1`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8 */;
CREATE TABLE `sbtest1` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `k` int(11) NOT NULL DEFAULT 0,
  `c` char(120) NOT NULL DEFAULT '',
  `pad` char(60) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  KEY `k_1` (`k`)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `sbtest1`
--

LOCK TABLES `sbtest1` WRITE;
/*!40000 ALTER TABLE `sbtest1` DISABLE KEYS */;
INSERT INTO `sbtest1` VALUES (1,4993,'83868641912-28773972837-60736120486','67847967377-48000963322'),(2,5020,'it\'s; (a) \\ \"q\" ''x'' \n line','pad ) ('),(3,-1,'',NULL);
INSERT INTO `sbtest1` VALUES (4,0x00FF,_binary '\0\'\\;(',1.5e-3);
/*!40000 ALTER TABLE `sbtest1` ENABLE KEYS */;
UNLOCK TABLES;

--
-- Table structure for table `empty`
--

DROP TABLE IF EXISTS `empty`;
CREATE TABLE `empty` (
  `a` int(11) DEFAULT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

LOCK TABLES `empty` WRITE;
/*!40000 ALTER TABLE `empty` DISABLE KEYS */;
/*!40000 ALTER TABLE `empty` ENABLE KEYS */;
UNLOCK TABLES;

CREATE TABLE `we``ird; (name)` (`x` varchar(10) DEFAULT 'a;b');
INSERT INTO `we``ird; (name)` (`x`) VALUES ('('),(')');
INSERT IGNORE INTO `log` VALUES (1);
REPLACE INTO `log` VALUES (2),(3);
INSERT INTO `log` VALUES (4) ON DUPLICATE KEY UPDATE a=VALUES(a);

--
-- Dumping routines for database 'sbtest'
--
/*!50003 DROP PROCEDURE IF EXISTS `p` */;
/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
DELIMITER ;;
CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()
begin
insert into `log` values (100);
insert into `log` values (101),(102);
end ;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER tr BEFORE INSERT ON `empty` FOR EACH ROW begin
insert into `log` values (200);
insert into `log` values (201);
end */;;
DELIMITER ;
INSERT INTO `after` VALUES (1),(2);
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
-- Dump completed on 2024-01-01 12:00:00
"#;

/// `sqlite3 x.db .dump` (3.40) of tables created with quoted names, a trigger, a view.
const SQLITE_DUMP: &str = r#"PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE IF NOT EXISTS "users" (id integer primary key autoincrement, name text);
INSERT INTO users VALUES(1,'x;y''z(');
INSERT INTO users VALUES(2,replace('line\ntwo','\n',char(10)));
INSERT INTO users VALUES(3,NULL);
CREATE TABLE [my t](a,b);
INSERT INTO "my t" VALUES(X'00ff',replace('a\nb','\n',char(10)));
CREATE TABLE IF NOT EXISTS "order"(x);
INSERT INTO "order" VALUES(1.5);
INSERT INTO "order" VALUES(-3);
CREATE TABLE `bq`(y);
INSERT INTO bq VALUES('tab→here');
CREATE TABLE q(z);
INSERT INTO q VALUES(1);
CREATE TABLE e(a);
CREATE TABLE IF NOT EXISTS "a""b"(c);
INSERT INTO "a""b" VALUES(2);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('users',3);
CREATE TRIGGER tr after insert on e begin insert into q values(1); insert into q values(2); end;
CREATE VIEW v as select * from q;
CREATE INDEX ix on q(z);
COMMIT;
"#;

/// `sqlite3 x.db .dump` (3.40) of an FTS5 table (shadow tables named in single quotes)
/// after `analyze`.
const SQLITE_FTS_DUMP: &str = r#"PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','ft','ft',0,'CREATE VIRTUAL TABLE ft using fts5(x)');
CREATE TABLE IF NOT EXISTS 'ft_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO ft_data VALUES(1,X'0102');
INSERT INTO ft_data VALUES(10,X'000000000101010001010101');
INSERT INTO ft_data VALUES(137438953473,X'00000018063068656c6c6f0102020105776f726c64010203040a');
CREATE TABLE IF NOT EXISTS 'ft_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO ft_idx VALUES(1,X'',2);
CREATE TABLE IF NOT EXISTS 'ft_content'(id INTEGER PRIMARY KEY, c0);
INSERT INTO ft_content VALUES(1,'hello; world(');
CREATE TABLE IF NOT EXISTS 'ft_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO ft_docsize VALUES(1,X'02');
CREATE TABLE IF NOT EXISTS 'ft_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO ft_config VALUES('version',4);
CREATE TABLE e(a);
CREATE TABLE t(a integer primary key autoincrement);
INSERT INTO t VALUES(5);
ANALYZE sqlite_schema;
INSERT INTO sqlite_stat1 VALUES('t',NULL,'1');
INSERT INTO sqlite_stat1 VALUES('ft_data',NULL,'3');
INSERT INTO sqlite_stat1 VALUES('ft_content',NULL,'1');
INSERT INTO sqlite_stat1 VALUES('ft_idx','ft_idx','1 1 1');
INSERT INTO sqlite_stat1 VALUES('ft_docsize',NULL,'1');
INSERT INTO sqlite_stat1 VALUES('ft_config','ft_config','1 1');
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('t',5);
PRAGMA writable_schema=OFF;
COMMIT;
"#;

/// The samples with their tabs, and the syntax each is written in.
fn samples() -> Vec<(Syntax, Vec<u8>)> {
    [
        (Syntax::Postgres, POSTGRES_DUMP),
        (Syntax::Mysql, MYSQL_DUMP),
        (Syntax::Sqlite, SQLITE_DUMP),
        (Syntax::Sqlite, SQLITE_FTS_DUMP),
    ]
    .into_iter()
    .map(|(d, text)| (d, text.replace('→', "\t").into_bytes()))
    .collect()
}

fn scan(syntax: Syntax, input: &[u8]) -> Vec<(String, u64)> {
    let mut s = SqlScanner::new(syntax);
    s.feed(input);
    s.finish()
}

/// Feeds `input` cut at `cuts` (positions in any order, repeats allowed).
fn scan_cut(syntax: Syntax, input: &[u8], cuts: &[usize]) -> Vec<(String, u64)> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.sort_unstable();
    let mut s = SqlScanner::new(syntax);
    let mut from = 0;
    for c in cuts {
        s.feed(&input[from..c]);
        from = c;
    }
    s.feed(&input[from..]);
    s.finish()
}

fn expect(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

/// The capacity of the scanner's one buffer: it must never grow.
fn buffer_capacity(s: &SqlScanner) -> usize {
    match &s.machine {
        Machine::Copy(m) => m.buffer_capacity(),
        Machine::Statements(m) => m.buffer_capacity(),
    }
}

#[test]
fn postgres_copy_blocks_count_their_lines() {
    let (_, dump) = &samples()[0];
    assert_eq!(
        scan(Syntax::Postgres, dump),
        expect(&[
            ("public.\"My Table\"", 5),
            ("public.empty", 0),
            ("public.pgbench_branches", 3),
            ("public.nocols", 1),
            ("public.one_col", 2),
            ("public.\"a (b\"", 1),
        ])
    );
}

#[test]
fn postgres_lines_that_only_look_like_copy_are_ignored() {
    let dump = b"-- COPY public.a (x) FROM stdin;\n\
            COPY public.b (x) FROM stdin\n\
            1\n\
            COPY public.c (x) FROM stdin; \n\
            copy public.d (x) FROM stdin;\n\
            \\.\n";
    assert_eq!(scan(Syntax::Postgres, dump), expect(&[]));
}

#[test]
fn postgres_copy_line_longer_than_the_prefix_is_recognised() {
    let columns: Vec<String> = (0..2000).map(|i| format!("column_{i}")).collect();
    let dump = format!(
        "COPY public.wide ({}) FROM stdin;\n1\n2\n\\.\n",
        columns.join(", ")
    );
    assert!(dump.len() > 4 * MAX_PREFIX);
    assert_eq!(
        scan(Syntax::Postgres, dump.as_bytes()),
        expect(&[("public.wide", 2)])
    );
}

#[test]
fn postgres_long_rows_and_names_keep_memory_bounded() {
    let mut s = SqlScanner::new(Syntax::Postgres);
    let capacity = buffer_capacity(&s);
    s.feed(b"COPY public.t (a) FROM stdin;\n");
    let row = vec![b'x'; 3 << 20];
    for _ in 0..3 {
        s.feed(&row);
        s.feed(b"\n");
    }
    s.feed(b"\\.\nCOPY ");
    s.feed(&vec![b'n'; 1 << 20]);
    s.feed(b" FROM stdin;\n1\n\\.\n");
    assert_eq!(buffer_capacity(&s), capacity);
    let counts = s.finish();
    assert_eq!(counts[0], ("public.t".to_string(), 3));
    assert_eq!(counts[1].0.len(), MAX_PREFIX - COPY_START.len());
    assert_eq!(counts[1].1, 1);
}

#[test]
fn postgres_unterminated_last_row_counts() {
    let dump = b"COPY public.t (a) FROM stdin;\n1\n2";
    assert_eq!(scan(Syntax::Postgres, dump), expect(&[("public.t", 2)]));
    let dump = b"COPY public.t (a) FROM stdin;\n1\n\\.";
    assert_eq!(scan(Syntax::Postgres, dump), expect(&[("public.t", 1)]));
}

#[test]
fn mysql_extended_inserts_count_their_rows() {
    let (_, dump) = &samples()[1];
    assert_eq!(
        scan(Syntax::Mysql, dump),
        expect(&[
            ("sbtest1", 4),
            ("empty", 0),
            ("we`ird; (name)", 2),
            ("log", 4),
            ("after", 2),
        ])
    );
}

#[test]
fn mysql_strings_escape_with_backslashes_and_doubled_quotes() {
    let dump = br#"INSERT INTO t VALUES ('\\'),('a\\\'b;('),('it''s)'),("dq\";("),('x'
'y');
INSERT INTO u VALUES ('new
line; (');
"#;
    assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 5), ("u", 1)]));
}

#[test]
fn mysql_comments_hide_semicolons_and_parens() {
    let dump = b"-- a comment; (x)\n\
            # another; (y)\n\
            /* block; ( */ INSERT INTO t VALUES (1),/* (2), */(3);\n\
            /*!40000 ALTER TABLE `t` DISABLE KEYS; ( */;\n\
            INSERT INTO t VALUES (4--1),(5);\n\
            --\n\
            INSERT INTO t VALUES (6)--;\n\
            (7);\n";
    // `--` without whitespace after it is two minus signs, so `--;` ends the statement
    // and `(7);` is not an insert.
    assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 5)]));
}

#[test]
fn mysql_insert_forms() {
    let dump = b"INSERT INTO `t` (`a`,`b`) VALUES (1,2),(3,4);\n\
            INSERT LOW_PRIORITY IGNORE INTO `t` VALUE (5,6);\n\
            REPLACE `t` SET a=1;\n\
            insert into t values(7,8);\n\
            INSERT INTO `u` SELECT * FROM `t`;\n";
    assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 4), ("u", 0)]));
}

#[test]
fn mysql_delimiter_blocks_are_skipped() {
    let dump = b"delimiter //\n\
            CREATE PROCEDURE p() BEGIN INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END//\n\
            -- a line starting DELIMITER inside a string does not count:\n\
            SELECT 'x\n\
            DELIMITER ;\n\
            '//\n\
            INSERT INTO t VALUES (3)//\n\
            DELIMITER ;\n\
            INSERT INTO t VALUES (4);\n";
    assert_eq!(scan(Syntax::Mysql, dump), expect(&[("t", 1)]));
}

#[test]
fn mysql_long_names_are_cut_and_memory_stays_bounded() {
    let mut s = SqlScanner::new(Syntax::Mysql);
    let capacity = buffer_capacity(&s);
    s.feed(b"CREATE TABLE `");
    s.feed(&vec![b'n'; 1 << 20]);
    s.feed(b"` (a int);\nINSERT INTO `t` VALUES ('");
    s.feed(&vec![b'x'; 3 << 20]);
    s.feed(b"'),(");
    s.feed(&vec![b'9'; 1 << 20]);
    s.feed(b");\n");
    assert_eq!(buffer_capacity(&s), capacity);
    let counts = s.finish();
    assert_eq!(counts[0].0, "n".repeat(MAX_PREFIX - 1));
    assert_eq!(counts[1], ("t".to_string(), 2));
}

#[test]
fn sqlite_dump_counts_inserts_and_names_tables_one_way() {
    let all = samples();
    assert_eq!(
        scan(Syntax::Sqlite, &all[2].1),
        expect(&[
            ("users", 3),
            ("\"my t\"", 1),
            ("order", 2),
            ("bq", 1),
            ("q", 1),
            ("e", 0),
            ("\"a\"\"b\"", 1),
            ("sqlite_sequence", 1),
        ])
    );
    assert_eq!(
        scan(Syntax::Sqlite, &all[3].1),
        // sqlite_schema (the virtual table's row) is left out.
        expect(&[
            ("ft_data", 3),
            ("ft_idx", 1),
            ("ft_content", 1),
            ("ft_docsize", 1),
            ("ft_config", 1),
            ("e", 0),
            ("t", 1),
            ("sqlite_stat1", 6),
            ("sqlite_sequence", 1),
        ])
    );
}

#[test]
fn sqlite_strings_have_no_backslash_escapes() {
    let dump = b"INSERT INTO t VALUES('a\\');\nINSERT INTO t VALUES('b\\''c');\n\
            INSERT INTO t VALUES('multi\nline;(');\nINSERT INTO t VALUES(1),(2)--;\n;\n";
    assert_eq!(scan(Syntax::Sqlite, dump), expect(&[("t", 5)]));
}

#[test]
fn sqlite_names_in_any_quotes() {
    let dump = "CREATE TABLE [x y](a);\nCREATE TABLE 'q''s'(a);\nCREATE TABLE \"tête\"(a);\n\
            CREATE TABLE `_ok1`(a);\nINSERT INTO \"x y\" VALUES(1);\nINSERT INTO \"q's\" VALUES(1);\n\
            INSERT INTO \"tête\" VALUES(1);\nINSERT INTO _ok1 VALUES(1);\n";
    assert_eq!(
        scan(Syntax::Sqlite, dump.as_bytes()),
        expect(&[("\"x y\"", 1), ("\"q's\"", 1), ("\"tête\"", 1), ("_ok1", 1),])
    );
}

#[test]
fn sqlite_trigger_bodies_are_not_counted() {
    let dump = b"CREATE TRIGGER tr AFTER INSERT ON e BEGIN\n\
            INSERT INTO q VALUES(1);\n\
            UPDATE q SET z = CASE WHEN z > 0 THEN 1 ELSE 2 END WHERE z IN (1);\n\
            INSERT INTO q VALUES(2);\n\
            END;\n\
            CREATE TEMP TRIGGER t2 AFTER DELETE ON e BEGIN INSERT INTO q VALUES(3); END;\n\
            INSERT INTO q VALUES(4);\n";
    assert_eq!(scan(Syntax::Sqlite, dump), expect(&[("q", 1)]));
}

#[test]
fn every_cut_gives_the_same_counts() {
    for (syntax, dump) in samples() {
        let whole = scan(syntax, &dump);
        for cut in 0..=dump.len() {
            assert_eq!(scan_cut(syntax, &dump, &[cut]), whole, "cut at {cut}");
        }
        let mut s = SqlScanner::new(syntax);
        for b in &dump {
            s.feed(std::slice::from_ref(b));
        }
        assert_eq!(s.finish(), whole);
    }
}

/// A reader that returns at most 3 bytes per call.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(3).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn counting_reader_passes_bytes_through() {
    for (syntax, dump) in samples() {
        let mut reader = CountingReader::new(Trickle(&dump), syntax);
        let mut out = Vec::new();
        let mut buf = [0u8; 5];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, dump);
        assert_eq!(reader.finish(), scan(syntax, &dump));

        let mut reader = CountingReader::new(&dump[..], syntax);
        let mut out = Vec::new();
        io::copy(&mut reader, &mut out).unwrap();
        assert_eq!(out, dump);
        assert_eq!(reader.finish(), scan(syntax, &dump));
    }
}

const DIALECTS: [Syntax; 3] = [Syntax::Postgres, Syntax::Mysql, Syntax::Sqlite];

/// Bytes that steer the scanners, often; any byte, sometimes.
fn edit_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"'\"`\\;()[],-/*#\n .".to_vec()),
        any::<u8>(),
    ]
}

/// A sample with random bytes replaced, inserted and removed.
fn mutated_sample() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<Index>(), edit_byte(), 0..3u8), 0..24);
    (any::<Index>(), edits).prop_map(|(which, edits)| {
        let all = samples();
        let mut dump = all[which.index(all.len())].1.clone();
        for (at, byte, op) in edits {
            let i = at.index(dump.len() + 1);
            match op {
                0 if i < dump.len() => dump[i] = byte,
                1 if i < dump.len() => {
                    dump.remove(i);
                }
                _ => dump.insert(i, byte),
            }
        }
        dump
    })
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..24)
}

fn positions(cuts: &[Index], len: usize) -> Vec<usize> {
    cuts.iter().map(|c| c.index(len + 1)).collect()
}

proptest! {
    #[test]
    fn samples_cut_anywhere_count_the_same(which in any::<Index>(), cuts in cuts()) {
        let all = samples();
        let (syntax, dump) = &all[which.index(all.len())];
        let whole = scan(*syntax, dump);
        prop_assert_eq!(scan_cut(*syntax, dump, &positions(&cuts, dump.len())), whole);
    }

    #[test]
    fn mutated_samples_never_panic_and_cut_anywhere(
        dump in mutated_sample(),
        syntax in prop::sample::select(DIALECTS.to_vec()),
        cuts in cuts(),
    ) {
        let whole = scan(syntax, &dump);
        prop_assert_eq!(scan_cut(syntax, &dump, &positions(&cuts, dump.len())), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_grow_the_buffer(
        bytes in any::<Vec<u8>>(),
        syntax in prop::sample::select(DIALECTS.to_vec()),
        cuts in cuts(),
    ) {
        let mut s = SqlScanner::new(syntax);
        let capacity = buffer_capacity(&s);
        s.feed(&bytes);
        prop_assert_eq!(buffer_capacity(&s), capacity);
        let whole = s.finish();
        prop_assert_eq!(scan_cut(syntax, &bytes, &positions(&cuts, bytes.len())), whole);
    }

    /// Random values, written the way each tool escapes them, are counted exactly.
    #[test]
    fn generated_dumps_count_exactly(
        rows in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(edit_byte(), 0..12), 1..4),
            0..40,
        ),
        per_insert in 1..8usize,
        cuts in cuts(),
    ) {
        let values: Vec<Vec<String>> = rows
            .iter()
            .map(|row| row.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect())
            .collect();
        for (syntax, dump) in [
            (Syntax::Postgres, pg_copy(&values)),
            (Syntax::Mysql, mysql_inserts(&values, per_insert)),
            (Syntax::Sqlite, sqlite_inserts(&values)),
        ] {
            let counted = scan_cut(syntax, dump.as_bytes(), &positions(&cuts, dump.len()));
            let name = if syntax == Syntax::Postgres { "public.t" } else { "t" };
            prop_assert_eq!(counted, expect(&[(name, values.len() as u64)]), "{}", dump);
        }
    }
}

/// A `COPY` block in text format.
fn pg_copy(rows: &[Vec<String>]) -> String {
    let mut out = String::from("COPY public.t (a, b, c) FROM stdin;\n");
    for row in rows {
        let fields: Vec<String> = row
            .iter()
            .map(|v| {
                v.replace('\\', "\\\\")
                    .replace('\n', "\\n")
                    .replace('\r', "\\r")
                    .replace('\t', "\\t")
            })
            .collect();
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out.push_str("\\.\n\n");
    out
}

/// `mysqldump` extended inserts, `per_insert` rows each.
fn mysql_inserts(rows: &[Vec<String>], per_insert: usize) -> String {
    let mut out = String::from("CREATE TABLE `t` (`a` text, `b` text, `c` text);\n");
    for chunk in rows.chunks(per_insert) {
        let tuples: Vec<String> = chunk
            .iter()
            .map(|row| {
                let values: Vec<String> = row
                    .iter()
                    .map(|v| {
                        let escaped = v
                            .replace('\\', "\\\\")
                            .replace('\'', "\\'")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n")
                            .replace('\0', "\\0");
                        format!("'{escaped}'")
                    })
                    .collect();
                format!("({})", values.join(","))
            })
            .collect();
        out.push_str(&format!("INSERT INTO `t` VALUES {};\n", tuples.join(",")));
    }
    out
}

/// `sqlite3 .dump` inserts, one row each.
fn sqlite_inserts(rows: &[Vec<String>]) -> String {
    let mut out = String::from("CREATE TABLE t(a,b,c);\n");
    for row in rows {
        let values: Vec<String> = row
            .iter()
            .map(|v| {
                let quoted = format!("'{}'", v.replace('\'', "''"));
                if v.contains('\n') {
                    format!("replace({},'\\n',char(10))", quoted.replace('\n', "\\n"))
                } else {
                    quoted
                }
            })
            .collect();
        out.push_str(&format!("INSERT INTO t VALUES({});\n", values.join(",")));
    }
    out
}
