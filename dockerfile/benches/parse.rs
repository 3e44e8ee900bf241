//! Parse + resolve of a generated 10,000-line Dockerfile (the frontend's
//! budget is 50 ms). Run: `cargo bench -p kiln-dockerfile`.

use std::time::{Duration, Instant};

use kiln_dockerfile::{parse_dockerfile, resolve, Options};

/// Many stages using every common instruction, continuations, heredocs,
/// ARG/ENV expansion and cross-stage COPY --from.
fn generate(lines: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG BASE=busybox\nARG VERSION=1.0\n");
    let mut stage = 0;
    while out.lines().count() < lines {
        out.push_str(&format!("FROM ${{BASE}}:${{VERSION}} AS s{stage}\n"));
        out.push_str("ARG VERSION\nENV APP=/opt/app PATH=/opt/app/bin:$PATH\nWORKDIR $APP/src\n");
        out.push_str(&format!(
            "LABEL org.example.stage=\"{stage}\" org.example.version=${{VERSION}}\n"
        ));
        out.push_str("COPY --chown=1000:1000 --chmod=0644 src/ ./\n");
        if stage > 0 {
            out.push_str(&format!(
                "COPY --from=s{} /opt/app/bin/ /opt/app/bin/\n",
                stage - 1
            ));
        }
        out.push_str("RUN --mount=type=cache,target=/root/.cache set -e; \\\n    make -j2 \\\n    && make install\n");
        out.push_str("RUN <<EOF\nset -e\necho building ${APP}\nEOF\n");
        out.push_str("EXPOSE 8080/tcp\nUSER 1000:1000\nHEALTHCHECK --interval=30s --timeout=3s CMD [\"/opt/app/bin/check\"]\n");
        out.push_str("CMD [\"/opt/app/bin/run\", \"--port\", \"8080\"]\n\n");
        stage += 1;
    }
    out
}

fn main() {
    let text = generate(10_000);
    let lines = text.lines().count();
    let opts = Options::default();
    let mut samples: Vec<Duration> = (0..30)
        .map(|_| {
            let start = Instant::now();
            let file = parse_dockerfile(&text).expect("generated Dockerfile parses");
            let graph = resolve(file, &opts).expect("generated Dockerfile resolves");
            std::hint::black_box(&graph);
            start.elapsed()
        })
        .collect();
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "parse+resolve {lines} lines: median {:.2} ms (min {:.2}, max {:.2}) over {} runs",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}
