//! A verifier that misbehaves on purpose, one attack per config, so the host's sandbox and its
//! recovery after each failure stay tested forever (like datafusion-udf-wasm's `guests/evil`).
//! `init` always succeeds. The attack runs in `verify` when the reference patch starts with
//! `attack`; any other pair gets an honest verdict (1 when the patches are equal, else 0), so
//! tests can check that the host recovers and the next item is scored correctly.

use std::cell::RefCell;
use std::io::Write;

wit_bindgen::generate!({
    path: "wit",
    world: "hostile",
    generate_all,
});

use exports::sera::plugin::verify::{Guest, PatchPair, Verdict};
use sera::plugin::log::{log, Level};

struct Hostile;

thread_local! {
    static ATTACK: RefCell<String> = const { RefCell::new(String::new()) };
}

fn read(path: &str) -> Result<Verdict, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Verdict {
            score: Some(1.0),
            matched: 0,
            total: 0,
            detail: format!("read {path}: {text}"),
        }),
        Err(e) => Err(format!("cannot read {path}: {e}")),
    }
}

fn honest(pair: &PatchPair) -> Verdict {
    let same = pair.reference == pair.candidate;
    Verdict {
        score: Some(if same { 1.0 } else { 0.0 }),
        matched: u32::from(same),
        total: 1,
        detail: "exact comparison".to_string(),
    }
}

fn network(port: u16) -> Result<Verdict, String> {
    use wasi::sockets::instance_network::instance_network;
    use wasi::sockets::ip_name_lookup::resolve_addresses;
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasi::sockets::tcp_create_socket::create_tcp_socket;

    let net = instance_network();
    let lookup = resolve_addresses(&net, "localhost").map(|_| ());
    let socket = create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("network denied: create-tcp-socket: {e:?}; lookup: {lookup:?}"))?;
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    socket
        .start_connect(&net, address)
        .map_err(|e| format!("network denied: start-connect: {e:?}; lookup: {lookup:?}"))?;
    socket.subscribe().block();
    match socket.finish_connect() {
        Ok(_) => Ok(Verdict {
            score: Some(1.0),
            matched: 0,
            total: 0,
            detail: format!("connected to 127.0.0.1:{port}"),
        }),
        Err(e) => Err(format!(
            "network denied: finish-connect: {e:?}; lookup: {lookup:?}"
        )),
    }
}

fn attack(pair: &PatchPair) -> Result<Verdict, String> {
    if !pair.reference.starts_with("attack") {
        return Ok(honest(pair));
    }
    let name = ATTACK.with(|a| a.borrow().clone());
    match name.as_str() {
        // Spin forever without calling the host.
        "loop" => {
            let mut x: u64 = pair.reference.len() as u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        // Grow memory 1 MiB at a time and keep it alive.
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![0u8; 1 << 20];
                block[4095] = 1;
                hoard.push(std::hint::black_box(block));
            }
        }
        "read-passwd" => read("/etc/passwd"),
        "read-dotdot" => read("../Cargo.toml"),
        "read-parent-of-root" => read("/../etc/passwd"),
        "panic" => panic!("hostile verifier panicked on purpose"),
        // Look up a name and connect to the loopback port given as the candidate patch.
        "network" => network(pair.candidate.trim().parse().unwrap_or(1)),
        // 100 MB to stdout, then a normal answer.
        "stdout-flood" => {
            // 1 KiB lines, so stdout's line buffering finds a newline at once and passes the
            // whole chunk through: the cost is in the host, not in scanning for newlines.
            let mut line = vec![b'x'; 1023];
            line.push(b'\n');
            let chunk = line.repeat(1024);
            let mut out = std::io::stdout();
            for _ in 0..100 {
                let _ = out.write_all(&chunk);
            }
            let _ = out.flush();
            log(Level::Info, "flood done");
            Ok(Verdict {
                score: Some(0.5),
                matched: 1,
                total: 2,
                detail: "survived the flood".to_string(),
            })
        }
        // A verdict that breaks the contract: score out of range, matched above total.
        "bad-verdict" => Ok(Verdict {
            score: Some(7.0),
            matched: 9,
            total: 2,
            detail: String::new(),
        }),
        "clock-random" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let mut seed = [0u8; 16];
            let random = std::collections::hash_map::RandomState::new();
            use std::hash::BuildHasher;
            let h = random.hash_one(42u8);
            seed[..8].copy_from_slice(&h.to_le_bytes());
            Ok(Verdict {
                score: None,
                matched: 0,
                total: 0,
                detail: format!("now={now} hash={h}"),
            })
        }
        other => Err(format!("unknown attack {other:?}")),
    }
}

impl Guest for Hostile {
    fn init(config: String) -> Result<(), String> {
        let name = config
            .split('"')
            .nth(3)
            .ok_or_else(|| format!("expected {{\"attack\":\"NAME\"}}, got {config}"))?
            .to_string();
        ATTACK.with(|a| *a.borrow_mut() = name);
        Ok(())
    }

    fn verify(pair: PatchPair) -> Result<Verdict, String> {
        attack(&pair)
    }

    fn verify_batch(pairs: Vec<PatchPair>) -> Vec<Result<Verdict, String>> {
        pairs.iter().map(attack).collect()
    }
}

export!(Hostile);
