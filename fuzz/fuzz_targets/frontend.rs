//! Parse, dump, plan and expand arbitrary input: none of it may panic.
#![no_main]

use dockerfile::shell::ShellLexer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(df) = dockerfile::parse(&text) {
        let _ = dockerfile::dump(&df);
    }
    let opts = plan::PlanOptions {
        build_args: vec![("FOO".into(), "bar baz".into())],
        ..plan::PlanOptions::default()
    };
    match plan::plan(&text, &opts, &plan::Unresolved) {
        Ok(p) => {
            let _ = p.target_stage();
        }
        Err(d) => {
            let _ = d.render("Dockerfile");
        }
    }
    let env: Vec<(String, String)> = vec![
        ("PWD".into(), "/home".into()),
        ("EMPTY".into(), String::new()),
        ("SPACE".into(), "a  b ".into()),
    ];
    for escape in ['\\', '`'] {
        let mut lexer = ShellLexer::new(escape);
        let _ = lexer.process_word(&text, &env);
        let _ = lexer.process_words(&text, &env);
        lexer.raw_quotes = true;
        lexer.skip_unset = true;
        let _ = lexer.process_word(&text, &env);
    }
});
