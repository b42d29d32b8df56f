//! Stack traces as the runtimes print them, written for usher's tests from each runtime's
//! documented output (no real application's logs): shared by the `traces` fixture (which
//! writes them), the multi-line tests (which check that each became one record) and the
//! joiner's unit tests.
#![allow(dead_code)]

/// (name, lines): each trace one record once joined, its lines joined with '\n'.
pub const TRACES: &[(&str, &[&str])] = &[
    (
        "java",
        &[
            "Exception in thread \"main\" java.lang.IllegalStateException: order 42 cannot be shipped",
            "\tat com.example.shop.OrderService.ship(OrderService.java:87)",
            "\tat com.example.shop.OrderController.post(OrderController.java:41)",
            "\tat com.example.shop.Main.main(Main.java:12)",
            "Caused by: java.sql.SQLTransientConnectionException: pool-1 - Connection is not available, request timed out after 30000ms.",
            "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)",
            "\tat com.example.shop.OrderRepository.find(OrderRepository.java:23)",
            "\t... 2 more",
            "\tSuppressed: java.io.IOException: close failed",
            "\t\tat com.example.shop.OrderRepository.close(OrderRepository.java:58)",
            "\t\t... 3 more",
        ],
    ),
    (
        // logback with `%-5level [%thread] %logger{36} - %msg%n`: the logger's line, then the
        // exception it was given.
        "java_logger",
        &[
            "ERROR [http-nio-8080-exec-1] c.e.shop.OrderController - request failed",
            "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"name\" is null",
            "\tat com.example.shop.OrderController.validate(OrderController.java:77)",
            "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)",
            "Caused by: java.lang.IllegalArgumentException",
            "\tat com.example.shop.Names.check(Names.java:9)",
            "\t... 45 common frames omitted",
        ],
    ),
    (
        "python",
        &[
            "Traceback (most recent call last):",
            "  File \"/app/main.py\", line 12, in <module>",
            "    main()",
            "  File \"/app/main.py\", line 8, in main",
            "    total = parse(sys.argv[1])",
            "            ^^^^^^^^^^^^^^^^^^",
            "  File \"/app/main.py\", line 4, in parse",
            "    return int(text)",
            "ValueError: invalid literal for int() with base 10: 'abc'",
        ],
    ),
    (
        "python_chained",
        &[
            "Traceback (most recent call last):",
            "  File \"/app/config.py\", line 5, in load",
            "    return settings[\"port\"]",
            "KeyError: 'port'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"/app/config.py\", line 7, in load",
            "    raise ConfigError(\"no port\")",
            "config.ConfigError: no port",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            "  File \"/app/main.py\", line 3, in <module>",
            "    config.load()",
            "RuntimeError: cannot start",
        ],
    ),
    (
        // Python logging's default format, then the traceback logger.exception() adds.
        "python_logging",
        &[
            "ERROR:root:payment failed",
            "Traceback (most recent call last):",
            "  File \"/app/pay.py\", line 9, in charge",
            "    gateway.charge(card)",
            "  File \"/app/gateway.py\", line 31, in charge",
            "    raise TimeoutError(\"gateway did not answer\")",
            "TimeoutError: gateway did not answer",
        ],
    ),
    (
        "python_group",
        &[
            "  + Exception Group Traceback (most recent call last):",
            "  |   File \"/app/tasks.py\", line 9, in <module>",
            "  |     asyncio.run(main())",
            "  | ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)",
            "  +-+---------------- 1 ----------------",
            "    | ValueError: one",
            "    +---------------- 2 ----------------",
            "    | TypeError: two",
            "    +------------------------------------",
        ],
    ),
    (
        // `go run`: the program's panic, then go's own `exit status 2`.
        "go_panic",
        &[
            "panic: runtime error: index out of range [5] with length 3",
            "",
            "goroutine 1 [running]:",
            "main.pick(...)",
            "\t/app/main.go:9",
            "main.main()",
            "\t/app/main.go:14 +0x1d",
            "exit status 2",
        ],
    ),
    (
        "go_signal",
        &[
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47f5c2]",
            "",
            "goroutine 1 [running]:",
            "main.(*Server).handle(0x0, {0x4b2a60, 0xc000012345})",
            "\t/app/server.go:27 +0x22",
            "main.main()",
            "\t/app/main.go:8 +0x2f",
        ],
    ),
    (
        "go_goroutines",
        &[
            "fatal error: all goroutines are asleep - deadlock!",
            "",
            "goroutine 1 [chan receive]:",
            "main.main()",
            "\t/app/main.go:11 +0x3b",
            "",
            "goroutine 6 [select]:",
            "net/http.(*persistConn).writeLoop(0xc0000b4000)",
            "\t/usr/local/go/src/net/http/transport.go:2421 +0xe5",
            "created by net/http.(*Transport).dialConn in goroutine 5",
            "\t/usr/local/go/src/net/http/transport.go:1777 +0x16f1",
        ],
    ),
    (
        "node",
        &[
            "TypeError: Cannot read properties of undefined (reading 'id')",
            "    at getUser (/app/src/users.js:14:21)",
            "    at /app/src/routes.js:8:18",
            "    at Layer.handle [as handle_request] (/app/node_modules/express/lib/router/layer.js:95:5)",
            "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
        ],
    ),
    (
        "node_properties",
        &[
            "Error: ENOENT: no such file or directory, open '/data/config.json'",
            "    at Object.openSync (node:fs:596:3)",
            "    at Object.readFileSync (node:fs:464:35)",
            "    at Object.<anonymous> (/app/index.js:3:22) {",
            "  errno: -2,",
            "  code: 'ENOENT',",
            "  syscall: 'open',",
            "  path: '/data/config.json'",
            "}",
            "",
            "Node.js v20.11.1",
        ],
    ),
    (
        "ruby",
        &[
            "app.rb:3:in 'Integer#/': divided by 0 (ZeroDivisionError)",
            "\tfrom app.rb:3:in 'Object#average'",
            "\tfrom app.rb:7:in '<main>'",
        ],
    ),
    (
        "dotnet",
        &[
            "Unhandled exception. System.InvalidOperationException: Sequence contains no elements",
            "   at System.Linq.ThrowHelper.ThrowNoElementsException()",
            "   at Program.<Main>$(String[] args) in /app/Program.cs:line 4",
        ],
    ),
];

/// Plain lines written around the traces: none of them can start or continue a trace.
pub fn plain(name: &str, n: usize) -> String {
    format!("{name} plain line {n}: GET /orders/42 200 12ms")
}

/// What is written for one trace, each line with its '\n': its first line alone, then a
/// plain line (which ends that one's record), the trace, and another plain line.
pub fn block(name: &str, lines: &[&str]) -> Vec<String> {
    let mut block = vec![format!("{}\n", lines[0]), format!("{}\n", plain(name, 1))];
    block.extend(lines.iter().map(|line| format!("{line}\n")));
    block.push(format!("{}\n", plain(name, 2)));
    block
}

/// The records `block` becomes once joined: the first line alone, the plain line, the
/// trace, the other plain line.
pub fn joined_block(name: &str, lines: &[&str]) -> Vec<String> {
    vec![
        lines[0].to_string(),
        plain(name, 1),
        lines.join("\n"),
        plain(name, 2),
    ]
}

/// The line written on the other stream after line `i` of a block in the `lines` mode.
pub fn other_stream(name: &str, i: usize) -> String {
    format!("{name} other stream {i}\n")
}

/// A Java trace of `lines` lines (at least 2), as the `paced` mode writes it a line at a
/// time: its first line says when it was written (microseconds since the epoch), a `Caused
/// by:` halfway.
pub fn paced_java(lines: usize, written_micros: u128) -> Vec<String> {
    let mut trace = vec![format!(
        "Exception in thread \"main\" java.lang.IllegalStateException: paced trace written at \
         {written_micros}"
    )];
    for n in 1..lines {
        trace.push(match n == lines / 2 {
            true => "Caused by: java.io.IOException: paced cause".to_string(),
            false => format!("\tat com.example.F{n}.call(F{n}.java:{n})"),
        });
    }
    trace
}

/// The plain line the `paced` mode writes after its trace, with the longest time it took
/// between two lines of the trace on one stream (a busy machine may stretch its sleeps).
pub fn paced_done(longest_gap_micros: u128) -> String {
    format!("paced done, longest gap {longest_gap_micros} us")
}

/// Bad input, each as written (the fixture's `bad` mode) and the records it must become (the
/// msgs, partial pieces joined back, invalid UTF-8 as U+FFFD).
pub fn bad() -> Vec<(Vec<String>, Vec<u8>)> {
    let mut cases: Vec<(Vec<String>, Vec<u8>)> = Vec::new();
    // A first line that never continues, then plain lines.
    cases.push((
        vec!["TypeError: never continued".to_string(), plain("bad", 1)],
        format!("TypeError: never continued\n{}\n", plain("bad", 1)).into_bytes(),
    ));
    // Endless continuation lines: records of at most 1000 lines each, nothing lost.
    let mut endless = String::from("java.lang.Error: endless\n");
    for n in 0..2500 {
        endless.push_str(&format!("\tat com.example.Loop.spin(Loop.java:{n})\n"));
    }
    let lines: Vec<&str> = endless.lines().collect();
    cases.push((
        lines.chunks(1000).map(|chunk| chunk.join("\n")).collect(),
        endless.clone().into_bytes(),
    ));
    // A trace longer than the record limit (16384): partial pieces.
    let mut long = String::from("java.lang.StackOverflowError");
    for n in 0..600 {
        long.push_str(&format!("\n\tat com.example.Deep.recurse(Deep.java:{n})"));
    }
    cases.push((vec![long.clone()], format!("{long}\n").into_bytes()));
    // Invalid UTF-8 inside a trace.
    let invalid: &[u8] =
        b"Traceback (most recent call last):\n  File \"/app/\xff.py\", line 1\n    x = '\xe2\x82'\nUnicodeError: \xc3\n";
    let text = String::from_utf8_lossy(invalid.strip_suffix(b"\n").unwrap_or(invalid));
    cases.push((vec![text.into_owned()], invalid.to_vec()));
    // Last: a trace at the very end of the output, without its last newline.
    let last = "Traceback (most recent call last):\n  File \"/app/last.py\", line 1, in <module>\nSystemExit: 3";
    cases.push((vec![last.to_string()], last.as_bytes().to_vec()));
    cases
}
