//! Row rules: a small expression language over a row's numeric columns, parsed once and evaluated a chunk at a time
//! (column vectors in, one verdict per row out).
//!
//! Grammar (lowest precedence first): `or`, `and`, `not`, comparisons (`< <= > >= == !=`, chained as in Python:
//! `low <= open <= high` is `low <= open and open <= high`), `+ -`, `* /`, unary `-`, then numbers, column names
//! (`` `Adj Close` `` for a name that is not a word), `is_null(column)` and parentheses. Logic is SQL's three-valued
//! logic: a comparison with a missing value (or a NaN from `0 / 0`) is unknown, `false and unknown` is false,
//! `true or unknown` is true; a row fails only when its rule is false.

use std::fmt;

/// Where and why a rule does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character position in the rule
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    fn text(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Column(String),
    IsNull(String),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// `first op[0] rest[0] op[1] rest[1] ...`
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Quoted(String),
    Cmp(CmpOp),
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
    End,
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Num(x) => format!("{x}"),
            Tok::Ident(s) => s.clone(),
            Tok::Quoted(s) => format!("`{s}`"),
            Tok::Cmp(op) => op.text().to_string(),
            Tok::Plus => "+".into(),
            Tok::Minus => "-".into(),
            Tok::Star => "*".into(),
            Tok::Slash => "/".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::End => "the end of the rule".into(),
        }
    }
}

fn err(position: usize, message: impl Into<String>) -> ParseError {
    ParseError { position, message: message.into() }
}

/// The tokens and their 1-based positions.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = chars.get(i + 1).copied();
        let (tok, len) = match (c, two) {
            ('<', Some('=')) => (Tok::Cmp(CmpOp::Le), 2),
            ('>', Some('=')) => (Tok::Cmp(CmpOp::Ge), 2),
            ('=', Some('=')) => (Tok::Cmp(CmpOp::Eq), 2),
            ('!', Some('=')) => (Tok::Cmp(CmpOp::Ne), 2),
            ('<', _) => (Tok::Cmp(CmpOp::Lt), 1),
            ('>', _) => (Tok::Cmp(CmpOp::Gt), 1),
            ('=', _) => return Err(err(pos, "'=' is not an operator; compare with '=='")),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('`', _) => {
                let Some(end) = chars[i + 1..].iter().position(|&c| c == '`') else {
                    return Err(err(pos, "unclosed '`' (a column name in backquotes)"));
                };
                let name: String = chars[i + 1..i + 1 + end].iter().collect();
                if name.is_empty() {
                    return Err(err(pos, "empty column name ``"));
                }
                (Tok::Quoted(name), end + 2)
            }
            (c, _) if c.is_ascii_digit() || c == '.' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                // an exponent: 1e-3, 2.5E10
                if j < chars.len() && (chars[j] == 'e' || chars[j] == 'E') {
                    let mut k = j + 1;
                    if k < chars.len() && (chars[k] == '+' || chars[k] == '-') {
                        k += 1;
                    }
                    if k < chars.len() && chars[k].is_ascii_digit() {
                        while k < chars.len() && chars[k].is_ascii_digit() {
                            k += 1;
                        }
                        j = k;
                    }
                }
                let s: String = chars[i..j].iter().collect();
                let x = s.parse::<f64>().map_err(|_| err(pos, format!("'{s}' is not a number")))?;
                (Tok::Num(x), j - i)
            }
            (c, _) if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.') {
                    j += 1;
                }
                (Tok::Ident(chars[i..j].iter().collect()), j - i)
            }
            ('&' | '|' | '!', _) => {
                let word = match c {
                    '&' => "and",
                    '|' => "or",
                    _ => "not",
                };
                return Err(err(pos, format!("'{c}' is not an operator; write '{word}'")));
            }
            (c, _) => return Err(err(pos, format!("unexpected character '{c}'"))),
        };
        out.push((tok, pos));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// What a sub-expression yields: a number per row, or a condition per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Condition,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }

    fn pos(&self) -> usize {
        self.toks[self.at].1
    }

    fn bump(&mut self) -> (Tok, usize) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    fn need(&self, kind: Kind, got: Kind, pos: usize, what: &str) -> Result<(), ParseError> {
        match (kind, got) {
            (a, b) if a == b => Ok(()),
            (Kind::Number, _) => Err(err(pos, format!("{what} takes a number, not a condition"))),
            (Kind::Condition, _) => Err(err(pos, format!("{what} takes a condition (a comparison), not a number"))),
        }
    }

    fn or(&mut self) -> Result<(Expr, Kind), ParseError> {
        let pos = self.pos();
        let (mut left, mut kind) = self.and()?;
        while self.is_word("or") {
            let op_pos = self.pos();
            self.bump();
            self.need(Kind::Condition, kind, pos, "'or'")?;
            let rpos = self.pos();
            let (right, rk) = self.and()?;
            self.need(Kind::Condition, rk, rpos.max(op_pos), "'or'")?;
            left = Expr::Or(Box::new(left), Box::new(right));
            kind = Kind::Condition;
        }
        Ok((left, kind))
    }

    fn and(&mut self) -> Result<(Expr, Kind), ParseError> {
        let pos = self.pos();
        let (mut left, mut kind) = self.not()?;
        while self.is_word("and") {
            self.bump();
            self.need(Kind::Condition, kind, pos, "'and'")?;
            let rpos = self.pos();
            let (right, rk) = self.not()?;
            self.need(Kind::Condition, rk, rpos, "'and'")?;
            left = Expr::And(Box::new(left), Box::new(right));
            kind = Kind::Condition;
        }
        Ok((left, kind))
    }

    fn not(&mut self) -> Result<(Expr, Kind), ParseError> {
        if self.is_word("not") {
            self.bump();
            let pos = self.pos();
            let (inner, kind) = self.not()?;
            self.need(Kind::Condition, kind, pos, "'not'")?;
            return Ok((Expr::Not(Box::new(inner)), Kind::Condition));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<(Expr, Kind), ParseError> {
        let pos = self.pos();
        let (first, kind) = self.sum()?;
        let mut rest = Vec::new();
        while let Tok::Cmp(op) = *self.peek() {
            let op_pos = self.pos();
            self.bump();
            if rest.is_empty() {
                self.need(Kind::Number, kind, pos, &format!("'{}'", op.text()))?;
            }
            let rpos = self.pos();
            if matches!(self.peek(), Tok::End) {
                return Err(err(rpos, format!("'{}' at character {op_pos} has nothing on its right", op.text())));
            }
            let (right, rk) = self.sum()?;
            self.need(Kind::Number, rk, rpos, &format!("'{}'", op.text()))?;
            rest.push((op, right));
        }
        if rest.is_empty() { Ok((first, kind)) } else { Ok((Expr::Compare(Box::new(first), rest), Kind::Condition)) }
    }

    fn sum(&mut self) -> Result<(Expr, Kind), ParseError> {
        let pos = self.pos();
        let (mut left, mut kind) = self.product()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => break,
            };
            let text = self.peek().show();
            self.bump();
            self.need(Kind::Number, kind, pos, &format!("'{text}'"))?;
            let rpos = self.pos();
            let (right, rk) = self.product()?;
            self.need(Kind::Number, rk, rpos, &format!("'{text}'"))?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
            kind = Kind::Number;
        }
        Ok((left, kind))
    }

    fn product(&mut self) -> Result<(Expr, Kind), ParseError> {
        let pos = self.pos();
        let (mut left, mut kind) = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                _ => break,
            };
            let text = self.peek().show();
            self.bump();
            self.need(Kind::Number, kind, pos, &format!("'{text}'"))?;
            let rpos = self.pos();
            let (right, rk) = self.unary()?;
            self.need(Kind::Number, rk, rpos, &format!("'{text}'"))?;
            left = Expr::Arith(op, Box::new(left), Box::new(right));
            kind = Kind::Number;
        }
        Ok((left, kind))
    }

    fn unary(&mut self) -> Result<(Expr, Kind), ParseError> {
        if matches!(self.peek(), Tok::Minus) {
            self.bump();
            let pos = self.pos();
            let (inner, kind) = self.unary()?;
            self.need(Kind::Number, kind, pos, "'-'")?;
            return Ok((Expr::Neg(Box::new(inner)), Kind::Number));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<(Expr, Kind), ParseError> {
        let (tok, pos) = self.bump();
        match tok {
            Tok::Num(x) => Ok((Expr::Number(x), Kind::Number)),
            Tok::Quoted(name) => Ok((Expr::Column(name), Kind::Number)),
            Tok::Ident(word) if ["and", "or", "not"].iter().any(|w| word.eq_ignore_ascii_case(w)) => {
                Err(err(pos, format!("'{word}' needs a condition before it")))
            }
            Tok::Ident(word) if matches!(self.peek(), Tok::LParen) => {
                if word != "is_null" {
                    return Err(err(pos, format!("unknown function '{word}' (the one function is is_null)")));
                }
                self.bump();
                let (arg, apos) = self.bump();
                let column = match arg {
                    Tok::Ident(c) | Tok::Quoted(c) => c,
                    other => return Err(err(apos, format!("is_null takes a column name, not {}", other.show()))),
                };
                let (close, cpos) = self.bump();
                if close != Tok::RParen {
                    return Err(err(cpos, format!("expected ')' after is_null({column}, found {}", close.show())));
                }
                Ok((Expr::IsNull(column), Kind::Condition))
            }
            Tok::Ident(name) => Ok((Expr::Column(name), Kind::Number)),
            Tok::LParen => {
                let inner = self.or()?;
                let (close, cpos) = self.bump();
                if close != Tok::RParen {
                    return Err(err(
                        cpos,
                        format!("expected ')' to close the '(' at character {pos}, found {}", close.show()),
                    ));
                }
                Ok(inner)
            }
            Tok::End => Err(err(pos, "the rule ends where a column, a number or '(' should come")),
            other => {
                Err(err(pos, format!("expected a column, a number, '(' or is_null(...), found '{}'", other.show())))
            }
        }
    }
}

impl Expr {
    /// Parses a rule; it must be a condition.
    ///
    /// # Errors
    /// A [`ParseError`] with the character position and what was expected there.
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        if text.trim().is_empty() {
            return Err(err(1, "the rule is empty"));
        }
        let mut p = Parser { toks: lex(text)?, at: 0 };
        let (expr, kind) = p.or()?;
        if !matches!(p.peek(), Tok::End) {
            return Err(err(p.pos(), format!("unexpected '{}' after a complete expression", p.peek().show())));
        }
        if kind != Kind::Condition {
            return Err(err(1, "the rule is a number, not a condition: compare it (e.g. close > 0)"));
        }
        Ok(expr)
    }

    /// The columns the rule reads, each once, in order of appearance.
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<String>) {
        let mut add = |c: &String| {
            if !out.contains(c) {
                out.push(c.clone());
            }
        };
        match self {
            Expr::Number(_) => {}
            Expr::Column(c) | Expr::IsNull(c) => add(c),
            Expr::Neg(e) | Expr::Not(e) => e.collect(out),
            Expr::Arith(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
            Expr::Compare(first, rest) => {
                first.collect(out);
                rest.iter().for_each(|(_, e)| e.collect(out));
            }
        }
    }
}

/// A row's verdict: false, true or unknown.
pub(crate) const FALSE: u8 = 0;
pub(crate) const TRUE: u8 = 1;
pub(crate) const UNKNOWN: u8 = 2;

/// One chunk's numeric columns for the evaluator: values (NaN where missing or not a number) and missing flags.
pub(crate) trait Columns {
    fn values(&self, column: &str) -> &[f64];
    fn missing(&self, column: &str) -> &[bool];
}

enum Val {
    Num(Vec<f64>),
    Cond(Vec<u8>),
}

impl Expr {
    /// The verdict of each of `n` rows ([`FALSE`], [`TRUE`] or [`UNKNOWN`]).
    pub(crate) fn verdicts(&self, n: usize, cols: &dyn Columns) -> Vec<u8> {
        match self.eval(n, cols) {
            Val::Cond(v) => v,
            // parse() only accepts conditions
            Val::Num(_) => vec![UNKNOWN; n],
        }
    }

    fn num(&self, n: usize, cols: &dyn Columns) -> Vec<f64> {
        match self.eval(n, cols) {
            Val::Num(v) => v,
            Val::Cond(_) => vec![f64::NAN; n],
        }
    }

    /// [`Expr::num`], borrowing a column's values instead of copying them.
    fn num_ref<'c>(&self, n: usize, cols: &'c dyn Columns) -> std::borrow::Cow<'c, [f64]> {
        match self {
            Expr::Column(c) => std::borrow::Cow::Borrowed(cols.values(c)),
            other => std::borrow::Cow::Owned(other.num(n, cols)),
        }
    }

    fn cond(&self, n: usize, cols: &dyn Columns) -> Vec<u8> {
        match self.eval(n, cols) {
            Val::Cond(v) => v,
            Val::Num(_) => vec![UNKNOWN; n],
        }
    }

    fn eval(&self, n: usize, cols: &dyn Columns) -> Val {
        match self {
            Expr::Number(x) => Val::Num(vec![*x; n]),
            Expr::Column(c) => Val::Num(cols.values(c).to_vec()),
            Expr::IsNull(c) => Val::Cond(cols.missing(c).iter().map(|&m| if m { TRUE } else { FALSE }).collect()),
            Expr::Neg(e) => Val::Num(e.num(n, cols).into_iter().map(|x| -x).collect()),
            Expr::Arith(op, a, b) => {
                let mut a = a.num(n, cols);
                let b = b.num_ref(n, cols);
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x = match op {
                        ArithOp::Add => *x + y,
                        ArithOp::Sub => *x - y,
                        ArithOp::Mul => *x * y,
                        ArithOp::Div => *x / y,
                    };
                }
                Val::Num(a)
            }
            Expr::Compare(first, rest) => {
                let mut out = vec![TRUE; n];
                let mut left = first.num_ref(n, cols);
                for (op, e) in rest {
                    let right = e.num_ref(n, cols);
                    // one loop per operator, the comparison inlined in it
                    match op {
                        CmpOp::Lt => compare(&mut out, &left, &right, |a, b| a < b),
                        CmpOp::Le => compare(&mut out, &left, &right, |a, b| a <= b),
                        CmpOp::Gt => compare(&mut out, &left, &right, |a, b| a > b),
                        CmpOp::Ge => compare(&mut out, &left, &right, |a, b| a >= b),
                        CmpOp::Eq => compare(&mut out, &left, &right, |a, b| a == b),
                        CmpOp::Ne => compare(&mut out, &left, &right, |a, b| a != b),
                    }
                    left = right;
                }
                Val::Cond(out)
            }
            Expr::And(a, b) => {
                let mut a = a.cond(n, cols);
                let b = b.cond(n, cols);
                a.iter_mut().zip(&b).for_each(|(x, y)| *x = and3(*x, *y));
                Val::Cond(a)
            }
            Expr::Or(a, b) => {
                let mut a = a.cond(n, cols);
                let b = b.cond(n, cols);
                a.iter_mut().zip(&b).for_each(|(x, y)| *x = or3(*x, *y));
                Val::Cond(a)
            }
            Expr::Not(e) => Val::Cond(
                e.cond(n, cols)
                    .into_iter()
                    .map(|v| match v {
                        TRUE => FALSE,
                        FALSE => TRUE,
                        u => u,
                    })
                    .collect(),
            ),
        }
    }
}

/// `out[i]` and (`left[i]` `holds` `right[i]`): unknown where either side is missing (NaN).
fn compare(out: &mut [u8], left: &[f64], right: &[f64], holds: impl Fn(f64, f64) -> bool) {
    for ((o, &x), &y) in out.iter_mut().zip(left).zip(right) {
        let v = if x.is_nan() || y.is_nan() {
            UNKNOWN
        } else if holds(x, y) {
            TRUE
        } else {
            FALSE
        };
        *o = and3(*o, v);
    }
}

fn and3(a: u8, b: u8) -> u8 {
    if a == FALSE || b == FALSE {
        FALSE
    } else if a == TRUE && b == TRUE {
        TRUE
    } else {
        UNKNOWN
    }
}

fn or3(a: u8, b: u8) -> u8 {
    if a == TRUE || b == TRUE {
        TRUE
    } else if a == FALSE && b == FALSE {
        FALSE
    } else {
        UNKNOWN
    }
}
