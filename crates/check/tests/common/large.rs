//! The 10,000-instruction Dockerfile of the test `large_dockerfile_is_checked` and the bench
//! `check_large`: 100 stages, thousands of variables, every rule's instruction kinds.

pub fn dockerfile() -> String {
    let mut df = String::from("ARG BASE=scratch\n");
    for s in 0..100 {
        df.push_str(&format!("FROM $BASE AS s{s}\n"));
        for i in 0..99 {
            match i % 5 {
                0 => df.push_str(&format!("ENV V{s}_{i}=${{V{s}_{}:-x}}\n", i.max(1) - 1)),
                1 => df.push_str(&format!("ARG A{s}_{i}=$V{s}_0\n")),
                2 => df.push_str(&format!("COPY f{i} /d/$A{s}_1\n")),
                3 => df.push_str("EXPOSE 80/tcp\n"),
                _ => df.push_str(&format!("LABEL l{i}=v\n")),
            }
        }
    }
    df
}
