//! Reading the resource managers of a PostgreSQL source tree: `rmgrlist.h` (ids, names,
//! identify functions), the `*_identify` functions of `src/backend/access/rmgrdesc/*desc.c`
//! (record-type names by `xl_info`) and the `#define`s of `src/include` they switch on.
//!
//! The identify functions are small and regular; this reads the forms they use in 14–18
//! and fails on anything else, so that a new form is noticed rather than misread:
//! `switch (EXPR) { case A: [case B:] id = "NAME"; break; … default: return NULL; }`,
//! `case A: return "NAME";`, `if ((EXPR) == A) return "NAME";` and an unconditional
//! `return "NAME";`. `EXPR` is evaluated with `info` = 0xFF to give the mask of `xl_info`
//! bits the function looks at; case labels are evaluated from the headers' `#define`s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One resource manager as a source tree defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rmgr {
    /// `RM_XLOG_ID`, …
    pub(super) symbol: String,
    /// The name pg_waldump prints.
    pub(super) name: String,
    /// The `xl_info` bits the identify function looks at.
    pub(super) mask: u8,
    /// `info & mask` → record-type name.
    pub(super) record_types: BTreeMap<u8, String>,
}

/// What a source tree says: its `XLOG_PAGE_MAGIC` and its resource managers by id.
#[derive(Debug)]
pub(super) struct SourceTree {
    pub(super) page_magic: u16,
    pub(super) rmgrs: Vec<Rmgr>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Reads the tree at `dir`.
pub(super) fn read_tree(dir: &Path) -> Result<SourceTree, String> {
    let defines = Defines::read(&dir.join("src/include"))?;
    let page_magic = defines.eval("XLOG_PAGE_MAGIC")?;
    let page_magic =
        u16::try_from(page_magic).map_err(|_| format!("XLOG_PAGE_MAGIC {page_magic:#x}"))?;
    let list = read(&dir.join("src/include/access/rmgrlist.h"))?;
    let desc_dir = dir.join("src/backend/access/rmgrdesc");
    let mut desc_sources = Vec::new();
    let entries =
        std::fs::read_dir(&desc_dir).map_err(|e| format!("reading {}: {e}", desc_dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "c") {
            desc_sources.push((path.clone(), strip_comments(&read(&path)?)));
        }
    }
    desc_sources.sort();
    let mut rmgrs = Vec::new();
    for line in strip_comments(&list).lines() {
        let Some(args) = line.trim().strip_prefix("PG_RMGR(") else {
            continue;
        };
        let args: Vec<&str> = args
            .trim_end_matches(')')
            .split(',')
            .map(str::trim)
            .collect();
        let (Some(symbol), Some(name), Some(identify)) = (args.first(), args.get(1), args.get(4))
        else {
            return Err(format!("rmgrlist.h: cannot read {line:?}"));
        };
        let name = name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .ok_or_else(|| format!("rmgrlist.h: name {name:?} is not a string"))?;
        let body = identify_body(&desc_sources, identify)?;
        let (mask, record_types) = parse_identify(identify, &body, &defines)?;
        rmgrs.push(Rmgr {
            symbol: (*symbol).to_owned(),
            name: name.to_owned(),
            mask,
            record_types,
        });
    }
    if rmgrs.is_empty() {
        return Err(format!("{}: no PG_RMGR entries", dir.display()));
    }
    Ok(SourceTree { page_magic, rmgrs })
}

/// Removes `/* … */` and `// …` comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                out.push(' ');
                rest = rest[b + 2..]
                    .find("*/")
                    .map_or("", |e| &rest[b + 2 + e + 2..]);
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |e| &rest[l + e..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// The body (between the outer braces) of `name(uint8 info)` in one of the sources.
fn identify_body(sources: &[(PathBuf, String)], name: &str) -> Result<String, String> {
    let signature = format!("\n{name}(uint8 info)");
    for (path, text) in sources {
        let Some(at) = text.find(&signature) else {
            continue;
        };
        let rest = &text[at + signature.len()..];
        let open = rest
            .find("\n{")
            .ok_or_else(|| format!("{}: {name} has no body", path.display()))?;
        let body = &rest[open + 2..];
        let close = body
            .find("\n}")
            .ok_or_else(|| format!("{}: {name}'s body does not end", path.display()))?;
        return Ok(body[..close].to_owned());
    }
    Err(format!("no rmgrdesc source defines {name}(uint8 info)"))
}

/// Splits a function body into statements: at `;`, braces, and the colon of a label.
fn statements(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in body.chars() {
        match c {
            ';' | '{' | '}' => {
                out.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                current.clear();
            }
            ':' if {
                let t = current.trim_start();
                t.starts_with("case ") || t.starts_with("default")
            } =>
            {
                out.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                current.clear();
            }
            _ => current.push(c),
        }
    }
    out.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
    out.retain(|s| !s.is_empty());
    out
}

fn quoted(s: &str) -> Option<&str> {
    s.strip_prefix('"')?.strip_suffix('"')
}

/// The mask and record-type names of one identify function.
fn parse_identify(
    name: &str,
    body: &str,
    defines: &Defines,
) -> Result<(u8, BTreeMap<u8, String>), String> {
    let mut mask: Option<u8> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut in_default = false;
    let mut types = BTreeMap::new();
    let eval = |expr: &str| -> Result<u8, String> {
        let v = defines.eval_expr(expr, 0)?;
        Ok((v & 0xFF) as u8)
    };
    let add = |types: &mut BTreeMap<u8, String>, value: u8, label: &str| match types
        .insert(value, label.to_owned())
    {
        Some(old) if old != label => Err(format!(
            "{name}: {value:#04x} is both {old:?} and {label:?}"
        )),
        _ => Ok(()),
    };
    for stmt in statements(body) {
        let stmt = stmt.as_str();
        if let Some(expr) = stmt.strip_prefix("switch ") {
            mask = Some(eval(expr)?);
        } else if let Some(label) = stmt.strip_prefix("case ") {
            pending.push(eval(label)?);
            in_default = false;
        } else if stmt == "default" {
            in_default = true;
        } else if let Some(cond) = stmt.strip_prefix("if ") {
            // `if ((EXPR) == LABEL) return "NAME"`
            let (cond, action) =
                split_parenthesized(cond).ok_or_else(|| format!("{name}: cannot read {stmt:?}"))?;
            let (lhs, rhs) = cond
                .split_once("==")
                .ok_or_else(|| format!("{name}: cannot read {stmt:?}"))?;
            let label = action
                .trim()
                .strip_prefix("return ")
                .and_then(|r| quoted(r.trim()))
                .ok_or_else(|| format!("{name}: cannot read {stmt:?}"))?;
            let m = eval(lhs)?;
            if mask.is_some_and(|old| old != m) {
                return Err(format!("{name}: two different masks"));
            }
            mask = Some(m);
            add(&mut types, eval(rhs)?, label)?;
        } else if let Some(label) = stmt
            .strip_prefix("id = ")
            .or_else(|| stmt.strip_prefix("return "))
            .and_then(|r| quoted(r.trim()))
        {
            if in_default {
                return Err(format!("{name}: a default case with a name"));
            }
            if pending.is_empty() {
                // Unconditional: every record of this rmgr has this name.
                if mask.is_some() || !types.is_empty() {
                    return Err(format!("{name}: {stmt:?} outside a case"));
                }
                mask = Some(0);
                add(&mut types, 0, label)?;
            } else {
                for value in pending.drain(..) {
                    add(&mut types, value, label)?;
                }
            }
        } else if matches!(
            stmt,
            "break" | "return id" | "return NULL" | "const char *id = NULL"
        ) {
            pending.clear();
        } else {
            return Err(format!("{name}: unexpected statement {stmt:?}"));
        }
    }
    let mask = mask.ok_or_else(|| format!("{name}: no switch"))?;
    if let Some((value, label)) = types.iter().find(|(v, _)| *v & mask != **v) {
        return Err(format!(
            "{name}: {label:?} ({value:#04x}) has bits outside the mask {mask:#04x}"
        ));
    }
    Ok((mask, types))
}

/// `(A) rest` → `(A, rest)`, for the outermost parentheses at the start.
fn split_parenthesized(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start().strip_prefix('(')?;
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&s[..i], &s[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// The object-like `#define`s of a header tree (first definition wins; names defined
/// differently in two headers cannot be used).
struct Defines {
    values: BTreeMap<String, String>,
    ambiguous: BTreeMap<String, Vec<String>>,
}

impl Defines {
    fn read(include: &Path) -> Result<Self, String> {
        let mut files = Vec::new();
        collect_headers(include, &mut files)?;
        files.sort();
        let mut values = BTreeMap::new();
        let mut ambiguous: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for file in files {
            let text = strip_comments(&read(&file)?);
            for line in text.lines() {
                let Some(rest) = line.trim_start().strip_prefix('#') else {
                    continue;
                };
                let Some(rest) = rest.trim_start().strip_prefix("define") else {
                    continue;
                };
                if !rest.starts_with([' ', '\t']) {
                    continue;
                }
                let rest = rest.trim_start();
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let (name, value) = rest.split_at(end);
                if name.is_empty() || value.starts_with('(') {
                    continue; // function-like macro
                }
                let value = value.trim().to_owned();
                match values.get(name) {
                    None => {
                        values.insert(name.to_owned(), value);
                    }
                    Some(old) if *old != value => {
                        ambiguous
                            .entry(name.to_owned())
                            .or_insert_with(|| vec![old.clone()])
                            .push(value);
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Self { values, ambiguous })
    }

    fn eval(&self, name: &str) -> Result<i64, String> {
        self.eval_expr(name, 0)
    }

    /// Evaluates a C integer expression of literals, `#define`d names and `info` (0xFF).
    fn eval_expr(&self, expr: &str, depth: u32) -> Result<i64, String> {
        if depth > 16 {
            return Err(format!("{expr:?}: #defines nest too deep"));
        }
        let tokens = tokenize(expr)?;
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            defines: self,
            depth,
        };
        let v = parser.or()?;
        if parser.at != tokens.len() {
            return Err(format!("{expr:?}: cannot evaluate"));
        }
        Ok(v)
    }

    fn lookup(&self, name: &str, depth: u32) -> Result<i64, String> {
        if name == "info" {
            return Ok(0xFF);
        }
        if let Some(all) = self.ambiguous.get(name) {
            return Err(format!(
                "{name} is defined differently in two headers: {all:?}"
            ));
        }
        let value = self
            .values
            .get(name)
            .ok_or_else(|| format!("{name} is not #defined in src/include"))?;
        self.eval_expr(value, depth + 1)
    }
}

fn collect_headers(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            collect_headers(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "h") {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Number(i64),
    Name(String),
    Op(&'static str),
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let text = expr[start..i].trim_end_matches(['u', 'U', 'l', 'L']);
            let value = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
                i64::from_str_radix(hex, 16)
            } else {
                text.parse()
            }
            .map_err(|_| format!("{expr:?}: bad number {text:?}"))?;
            out.push(Token::Number(value));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Token::Name(expr[start..i].to_owned()));
        } else {
            let two = expr.get(i..i + 2);
            let op = match two {
                Some("<<") => "<<",
                Some(">>") => ">>",
                _ => match c {
                    b'|' => "|",
                    b'&' => "&",
                    b'~' => "~",
                    b'(' => "(",
                    b')' => ")",
                    b'+' => "+",
                    _ => return Err(format!("{expr:?}: unexpected {:?}", c as char)),
                },
            };
            i += op.len();
            out.push(Token::Op(op));
        }
    }
    Ok(out)
}

/// Recursive descent over `|`, `&`, `<<`/`>>`, `+`, unary `~` and parentheses.
struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    defines: &'a Defines,
    depth: u32,
}

impl Parser<'_> {
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<i64, String> {
        let mut v = self.and()?;
        while self.eat("|") {
            v |= self.and()?;
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<i64, String> {
        let mut v = self.shift()?;
        while self.eat("&") {
            v &= self.shift()?;
        }
        Ok(v)
    }

    fn shift(&mut self) -> Result<i64, String> {
        let mut v = self.sum()?;
        loop {
            if self.eat("<<") {
                v <<= self.sum()?;
            } else if self.eat(">>") {
                v >>= self.sum()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn sum(&mut self) -> Result<i64, String> {
        let mut v = self.unary()?;
        while self.eat("+") {
            v += self.unary()?;
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<i64, String> {
        if self.eat("~") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let v = self.or()?;
            if !self.eat(")") {
                return Err("unbalanced parentheses".to_owned());
            }
            return Ok(v);
        }
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        match token {
            Some(Token::Number(v)) => Ok(v),
            Some(Token::Name(name)) => self.defines.lookup(&name, self.depth),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A miniature source tree with every identify-function form the reader accepts.
    fn tree(desc: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("xtask-rmgr-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "src/include/access/xlog_internal.h",
            "#define XLOG_PAGE_MAGIC 0xD118\t/* version */\n",
        );
        write(
            "src/include/access/rmgrlist.h",
            "/* list */\nPG_RMGR(RM_A_ID, \"Alpha\", a_redo, a_desc, a_identify, NULL)\n\
             PG_RMGR(RM_B_ID, \"Beta\", b_redo, b_desc, b_identify, NULL)\n\
             PG_RMGR(RM_C_ID, \"Gamma\", c_redo, c_desc, c_identify, NULL)\n",
        );
        write(
            "src/include/access/a.h",
            "#define XLR_INFO_MASK 0x0F\n#define XLOG_A_ONE 0x10 /* one */\n\
             #define XLOG_A_INIT 0x80\n#define XLOG_A_OPMASK 0x70\n#define F(x) (x)\n",
        );
        write("src/backend/access/rmgrdesc/adesc.c", desc);
        root
    }

    const DESC: &str = "const char *\na_identify(uint8 info)\n{\n\tconst char *id = NULL;\n\n\
        \tswitch (info & ~XLR_INFO_MASK)\n\t{\n\t\tcase XLOG_A_ONE:\n\t\t\tid = \"ONE\";\n\
        \t\t\tbreak;\n\t\tcase XLOG_A_ONE | XLOG_A_INIT:\n\t\tcase 0x20:\n\
        \t\t\tid = \"ONE+INIT\";\n\t\t\tbreak;\n\t}\n\n\treturn id;\n}\n\n\
        const char *\nb_identify(uint8 info)\n{\n\tif ((info & XLOG_A_OPMASK) == XLOG_A_ONE)\n\
        \t\treturn \"B\";\n\treturn NULL;\n}\n\nconst char *\nc_identify(uint8 info)\n{\n\
        \treturn \"Gamma\"; // every record\n}\n";

    #[test]
    fn reads_every_identify_form() {
        let root = tree(DESC);
        let t = read_tree(&root).unwrap();
        assert_eq!(t.page_magic, 0xD118);
        let names: Vec<_> = t.rmgrs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Alpha", "Beta", "Gamma"]);
        let a = &t.rmgrs[0];
        assert_eq!(a.mask, 0xF0);
        let types: Vec<_> = a
            .record_types
            .iter()
            .map(|(v, n)| (*v, n.as_str()))
            .collect();
        assert_eq!(
            types,
            [(0x10, "ONE"), (0x20, "ONE+INIT"), (0x90, "ONE+INIT")]
        );
        assert_eq!((t.rmgrs[1].mask, t.rmgrs[1].record_types.len()), (0x70, 1));
        assert_eq!(t.rmgrs[2].mask, 0);
        assert_eq!(t.rmgrs[2].record_types[&0], "Gamma");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn unknown_forms_and_names_are_errors() {
        let root = tree(&DESC.replace("break;", "i++;"));
        let err = read_tree(&root).unwrap_err();
        assert!(err.contains("unexpected statement"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
        let root = tree(&DESC.replace("case 0x20", "case XLOG_A_MISSING"));
        let err = read_tree(&root).unwrap_err();
        assert!(err.contains("XLOG_A_MISSING is not #defined"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
