//! The functions bake files call, as buildx's (go-cty's stdlib) behave, declared in an
//! `hcl-rs` evaluation context. A function not declared here is hcl-rs's "undefined
//! function" error, located by the caller.

use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn b(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

/// Declare every function in `ctx`.
pub fn declare(ctx: &mut Context) {
    use ParamType::{Any, Bool, String as Str};
    let f = |params: Vec<ParamType>, func: hcl::eval::Func| FuncDef::new(func, params);
    let variadic = |params: Vec<ParamType>, rest: ParamType, func: hcl::eval::Func| {
        FuncDef::builder()
            .params(params)
            .variadic_param(rest)
            .build(func)
    };
    ctx.declare_func("equal", f(vec![Any, Any], |a| Ok((a[0] == a[1]).into())));
    ctx.declare_func("notequal", f(vec![Any, Any], |a| Ok((a[0] != a[1]).into())));
    ctx.declare_func(
        "and",
        f(vec![Bool, Bool], |a| Ok((b(&a[0]) && b(&a[1])).into())),
    );
    ctx.declare_func(
        "or",
        f(vec![Bool, Bool], |a| Ok((b(&a[0]) || b(&a[1])).into())),
    );
    ctx.declare_func("not", f(vec![Bool], |a| Ok((!b(&a[0])).into())));
    ctx.declare_func(
        "lower",
        f(vec![Str], |a| Ok(s(&a[0]).to_lowercase().into())),
    );
    ctx.declare_func(
        "upper",
        f(vec![Str], |a| Ok(s(&a[0]).to_uppercase().into())),
    );
    ctx.declare_func("trimspace", f(vec![Str], |a| Ok(s(&a[0]).trim().into())));
    ctx.declare_func("title", f(vec![Str], title));
    ctx.declare_func(
        "trimprefix",
        f(vec![Str, Str], |a| {
            let (v, p) = (s(&a[0]), s(&a[1]));
            Ok(v.strip_prefix(p).unwrap_or(v).into())
        }),
    );
    ctx.declare_func(
        "trimsuffix",
        f(vec![Str, Str], |a| {
            let (v, p) = (s(&a[0]), s(&a[1]));
            Ok(v.strip_suffix(p).unwrap_or(v).into())
        }),
    );
    ctx.declare_func(
        "trim",
        f(vec![Str, Str], |a| {
            let cut = s(&a[1]);
            Ok(s(&a[0]).trim_matches(|c| cut.contains(c)).into())
        }),
    );
    ctx.declare_func(
        "join",
        variadic(
            vec![Str],
            ParamType::array_of(ParamType::nullable(Str)),
            join,
        ),
    );
    ctx.declare_func("split", f(vec![Str, Str], split));
    ctx.declare_func("replace", f(vec![Str, Str, Str], replace));
    ctx.declare_func(
        "substr",
        f(vec![Str, ParamType::Number, ParamType::Number], substr),
    );
    ctx.declare_func("length", f(vec![Any], length));
    ctx.declare_func(
        "concat",
        variadic(vec![], ParamType::array_of(Any), |a| {
            Ok(Value::Array(
                a.iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .cloned()
                    .collect(),
            ))
        }),
    );
    ctx.declare_func(
        "contains",
        f(vec![ParamType::array_of(Any), Any], |a| {
            Ok(a[0].as_array().is_some_and(|l| l.contains(&a[1])).into())
        }),
    );
    ctx.declare_func(
        "indexof",
        f(vec![ParamType::array_of(Any), Any], |a| {
            a[0].as_array()
                .and_then(|l| l.iter().position(|v| v == &a[1]))
                .map(|i| Value::from(i as u64))
                .ok_or_else(|| "item not found".to_string())
        }),
    );
    ctx.declare_func("coalesce", variadic(vec![], Any, coalesce));
    ctx.declare_func("format", variadic(vec![Str], Any, format));
    ctx.declare_func("sanitize", f(vec![Str], sanitize));
    ctx.declare_func("tostring", f(vec![Any], |a| text(&a[0]).map(Value::from)));
    ctx.declare_func("timestamp", f(vec![], |_| Ok(timestamp().into())));
    ctx.declare_func(
        "homedir",
        f(vec![], |_| {
            std::env::var("HOME")
                .map(Value::from)
                .map_err(|_| "HOME is not set".to_string())
        }),
    );
}

/// A primitive as a string, as HCL converts it.
fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err("expected a string, number or bool".into()),
    }
}

fn title(a: FuncArgs) -> Result<Value, String> {
    let mut out = String::new();
    let mut start = true;
    for c in s(&a[0]).chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    Ok(out.into())
}

fn join(a: FuncArgs) -> Result<Value, String> {
    let sep = s(&a[0]);
    let mut parts = Vec::new();
    for list in a.iter().skip(1) {
        for v in list.as_array().into_iter().flatten() {
            if !v.is_null() {
                parts.push(text(v)?);
            }
        }
    }
    Ok(parts.join(sep).into())
}

fn split(a: FuncArgs) -> Result<Value, String> {
    let (sep, v) = (s(&a[0]), s(&a[1]));
    if sep.is_empty() {
        return Err("the separator must not be empty".into());
    }
    Ok(Value::Array(v.split(sep).map(Value::from).collect()))
}

fn replace(a: FuncArgs) -> Result<Value, String> {
    let (v, from, to) = (s(&a[0]), s(&a[1]), s(&a[2]));
    if from.len() > 1 && from.starts_with('/') && from.ends_with('/') {
        return Err("regular expressions are not supported yet: give a plain substring".into());
    }
    if from.is_empty() {
        return Ok(v.into());
    }
    Ok(v.replace(from, to).into())
}

fn substr(a: FuncArgs) -> Result<Value, String> {
    let chars: Vec<char> = s(&a[0]).chars().collect();
    let n = |v: &Value| {
        v.as_number()
            .and_then(|n| n.as_i64())
            .ok_or_else(|| "offset and length must be whole numbers".to_string())
    };
    let (offset, length) = (n(&a[1])?, n(&a[2])?);
    let len = i64::try_from(chars.len()).map_err(|_| "string too long".to_string())?;
    let start = if offset < 0 { len + offset } else { offset };
    if start < 0 || start > len {
        return Err(format!("offset {offset} is outside the string"));
    }
    let end = if length < 0 {
        len
    } else {
        start.saturating_add(length).min(len)
    };
    // Both within 0..=len here, which is a usize.
    let (start, end) = (start as usize, end as usize);
    Ok(chars[start..end].iter().collect::<String>().into())
}

fn length(a: FuncArgs) -> Result<Value, String> {
    let n = match &a[0] {
        Value::String(s) => s.chars().count(),
        Value::Array(l) => l.len(),
        Value::Object(o) => o.len(),
        _ => return Err("length of a string, list or map only".into()),
    };
    Ok(Value::from(n as u64))
}

fn coalesce(a: FuncArgs) -> Result<Value, String> {
    a.iter()
        .find(|v| !v.is_null() && v.as_str() != Some(""))
        .cloned()
        .ok_or_else(|| "no non-null, non-empty argument".to_string())
}

/// `format`'s verbs: `%s`, `%d`, `%v`, `%q` and `%%`.
fn format(a: FuncArgs) -> Result<Value, String> {
    let spec = s(&a[0]);
    let mut args = a.iter().skip(1);
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'd' | 'v' | 'q')) => {
                let v = args
                    .next()
                    .ok_or_else(|| format!("not enough arguments for {spec:?}"))?;
                let t = text(v)?;
                if verb == 'q' {
                    out.push_str(&serde_json::Value::String(t).to_string());
                } else {
                    out.push_str(&t);
                }
            }
            Some(other) => return Err(format!("unsupported verb %{other} (use %s, %d, %v, %q)")),
            None => return Err("a lone % at the end".into()),
        }
    }
    if args.next().is_some() {
        return Err(format!("too many arguments for {spec:?}"));
    }
    Ok(out.into())
}

/// buildx's `sanitize`: every character but ASCII letters and digits becomes `_`.
fn sanitize(a: FuncArgs) -> Result<Value, String> {
    Ok(s(&a[0])
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .into())
}

/// The current time as RFC 3339 in UTC (go-cty's `timestamp()`).
fn timestamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use hcl::eval::Evaluate;

    use super::*;

    fn eval(expr: &str) -> Result<Value, String> {
        let mut ctx = Context::new();
        declare(&mut ctx);
        let e: hcl::Expression = expr.parse().map_err(|e| format!("{e}"))?;
        e.evaluate(&ctx).map_err(|e| e.to_string())
    }

    #[test]
    fn functions_behave_as_buildx() {
        assert_eq!(eval(r#"notequal("a", "")"#), Ok(true.into()));
        assert_eq!(eval(r#"equal("a", "a")"#), Ok(true.into()));
        assert_eq!(eval("and(true, false)"), Ok(false.into()));
        assert_eq!(eval("or(true, false)"), Ok(true.into()));
        assert_eq!(eval("not(false)"), Ok(true.into()));
        assert_eq!(eval(r#"join(",", ["a", "b"], ["c"])"#), Ok("a,b,c".into()));
        assert_eq!(
            eval(r#"split(",", "a,b")"#),
            Ok(Value::Array(vec!["a".into(), "b".into()]))
        );
        assert_eq!(eval(r#"lower("AbC")"#), Ok("abc".into()));
        assert_eq!(eval(r#"upper("AbC")"#), Ok("ABC".into()));
        assert_eq!(eval(r#"trimprefix("v1.2", "v")"#), Ok("1.2".into()));
        assert_eq!(eval(r#"trimsuffix("a.tar", ".tar")"#), Ok("a".into()));
        assert_eq!(eval(r#"replace("a-b-c", "-", ".")"#), Ok("a.b.c".into()));
        assert_eq!(eval(r#"substr("hello", 1, 3)"#), Ok("ell".into()));
        assert_eq!(eval(r#"substr("hello", -2, -1)"#), Ok("lo".into()));
        assert!(eval(r#"substr("hello", 9, 1)"#).is_err());
        assert_eq!(eval(r#"length("héllo")"#), Ok(Value::from(5u64)));
        assert_eq!(eval(r#"coalesce("", "x")"#), Ok("x".into()));
        assert_eq!(eval(r#"format("%s-%d", "a", 3)"#), Ok("a-3".into()));
        assert!(eval(r#"format("%s")"#).is_err());
        assert_eq!(eval(r#"sanitize("a/b:c")"#), Ok("a_b_c".into()));
        assert_eq!(eval(r#"title("hello world")"#), Ok("Hello World".into()));
        assert_eq!(eval(r#"contains(["a"], "a")"#), Ok(true.into()));
        assert_eq!(
            eval(r#"concat(["a"], ["b"])"#),
            Ok(Value::Array(vec!["a".into(), "b".into()]))
        );
        let ts = eval("timestamp()").unwrap();
        let ts = ts.as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    }

    #[test]
    fn bad_calls_are_errors() {
        // Wrong types and counts are checked by hcl-rs before the function runs.
        assert!(eval(r#"and("x", true)"#).is_err());
        assert!(eval("lower()").is_err());
        assert!(eval(r#"split("", "abc")"#).is_err());
        let e = eval(r#"nosuchfunc("x")"#).unwrap_err();
        assert!(e.contains("nosuchfunc"), "{e}");
    }
}
