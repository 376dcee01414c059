//! All 120 CHK vectors from Tahoe's `integration/vectors/test_vectors.yaml`, uploaded through `Grid::upload`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lafs_gateway::grid::mutable::keys::MutableKeys;
use lafs_gateway::grid::uri::{Cap, MutableFormat};
use serde::Deserialize;

use crate::common::{TestGrid, params, vectors_path};

#[derive(Deserialize)]
struct VectorFile {
    vector: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    convergence: String,
    expected: String,
    format: Format,
    sample: Sample,
    zfec: Zfec,
}

#[derive(Deserialize)]
struct Format {
    kind: String,
    params: Option<MutableParams>,
}

#[derive(Deserialize)]
struct MutableParams {
    format: String,
    key: String,
}

#[derive(Deserialize)]
struct Sample {
    length: usize,
    seed: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Zfec {
    required: usize,
    total: usize,
    segment_size: u64,
}

fn expand(seed: &[u8], length: usize) -> Vec<u8> {
    seed.iter().copied().cycle().take(length).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chk_vector_gives_the_expected_cap_and_reads_back() {
    let text = std::fs::read_to_string(vectors_path()).expect("shared vectors present");
    let file: VectorFile = serde_yaml::from_str(&text).expect("vectors parse");
    let chk: Vec<&Vector> = file.vector.iter().filter(|v| v.format.kind == "chk").collect();
    assert_eq!(chk.len(), 120);
    let mut read_sizes = std::collections::BTreeSet::new();
    let mut seen_params = std::collections::BTreeSet::new();
    let mut largest = 0;
    for (i, v) in chk.iter().enumerate() {
        let convergence = STANDARD.decode(&v.convergence).unwrap();
        let plaintext = expand(&STANDARD.decode(&v.sample.seed).unwrap(), v.sample.length);
        let test = TestGrid::new(
            4,
            params(v.zfec.required, 1, v.zfec.total, v.zfec.segment_size),
            &convergence,
        );
        let cap = test.grid.upload_bytes(plaintext.clone()).await.unwrap();
        assert_eq!(
            cap.to_string(),
            v.expected,
            "vector {i}: {}-of-{} {} bytes",
            v.zfec.required,
            v.zfec.total,
            v.sample.length
        );
        // Read back a few of them (every size class once, the largest too).
        if read_sizes.insert(v.sample.length) {
            let Cap::Chk(chk_cap) = &cap else {
                panic!("vector {i} gave a non-CHK cap")
            };
            let mut reader = test.grid.open_file(chk_cap).await.unwrap();
            assert_eq!(
                reader.read_range(0, u64::MAX).await.unwrap(),
                plaintext,
                "vector {i} read back"
            );
        }
        seen_params.insert((v.zfec.required, v.zfec.total));
        largest = largest.max(v.sample.length);
    }
    assert_eq!(largest, 8 * 1024 * 1024 + 1);
    for kn in [(1, 1), (1, 3), (2, 3), (3, 10), (71, 255), (101, 256)] {
        assert!(seen_params.contains(&kn), "parameters {kn:?} not covered");
    }
}

#[test]
fn every_sdmf_and_mdmf_vector_gives_the_expected_cap_from_its_key() {
    let text = std::fs::read_to_string(vectors_path()).expect("shared vectors present");
    let file: VectorFile = serde_yaml::from_str(&text).expect("vectors parse");
    let mut counts = std::collections::BTreeMap::new();
    for (i, v) in file.vector.iter().filter(|v| v.format.kind == "ssk").enumerate() {
        let params = v.format.params.as_ref().expect("ssk vectors carry a key");
        let format = match params.format.as_str() {
            "sdmf" => MutableFormat::Sdmf,
            "mdmf" => MutableFormat::Mdmf,
            other => panic!("vector {i}: unknown mutable format {other}"),
        };
        let keys = MutableKeys::from_pkcs1_pem(&params.key).unwrap_or_else(|e| panic!("vector {i}: {e}"));
        assert_eq!(
            Cap::Mutable(keys.write_cap(format)).to_string(),
            v.expected,
            "vector {i} ({})",
            params.format
        );
        // The parsed cap derives the same storage index as the key.
        let Cap::Mutable(parsed) = Cap::parse(&v.expected).unwrap() else {
            panic!("vector {i}: not a mutable cap")
        };
        assert_eq!(parsed.storage_index(), keys.storage_index);
        *counts.entry(params.format.clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.get("sdmf"), Some(&120));
    assert_eq!(counts.get("mdmf"), Some(&120));
}

#[derive(Deserialize)]
struct SpkiVectorFile {
    vector: Vec<SpkiVector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SpkiVector {
    expected_hash: String,
    expected_spki: String,
    certificate: String,
}

/// Tahoe's `spki-hash-test-vectors.yaml`: certificate PEM → SPKI DER → the NURL pin.
#[test]
fn spki_hash_vectors_match_tahoe() {
    use rustls_pki_types::pem::PemObject;
    let path = vectors_path().with_file_name("spki-hash-test-vectors.yaml");
    let file: SpkiVectorFile = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file.vector.len(), 3);
    for vector in &file.vector {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(vector.certificate.as_bytes()).unwrap();
        let spki = lafs_gateway::grid::spki::certificate_spki(&der).unwrap();
        assert_eq!(
            STANDARD.encode(&spki),
            vector.expected_spki.replace(char::is_whitespace, "")
        );
        assert_eq!(
            lafs_gateway::grid::spki::certificate_spki_hash(&der).unwrap(),
            vector.expected_hash.trim()
        );
    }
}
