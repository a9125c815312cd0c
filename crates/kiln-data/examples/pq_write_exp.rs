use polars::prelude::*;
use std::time::Instant;

fn main() {
    let n = 986_500usize;
    let cols = 12;
    let data: Vec<Vec<f64>> = (0..cols).map(|j| (0..n).map(|i| ((i * 7919 + j * 13) % 100_003) as f64 * 0.0137 + 10.0).collect()).collect();
    let keys: Vec<String> = (0..500).map(|s| format!("s{s:04}")).collect();
    let codes: Vec<u32> = (0..n).map(|i| (i % 500) as u32).collect();
    let times: Vec<i64> = (0..n).map(|i| (i / 500) as i64 * 86_400_000).collect();
    for (label, comp, stats, viaopt) in [
        ("zstd default, stats, via Option", ParquetCompression::Zstd(None), true, true),
        ("zstd default, stats", ParquetCompression::Zstd(None), true, false),
        ("lz4raw", ParquetCompression::Lz4Raw, true, false),
        ("snappy", ParquetCompression::Snappy, true, false),
        ("none", ParquetCompression::Uncompressed, true, false),
        ("none nostats", ParquetCompression::Uncompressed, false, false),
    ] {
        let t0 = Instant::now();
        let file = std::fs::File::create("/tmp/pf/exp.parquet").unwrap();
        let out = std::io::BufWriter::with_capacity(1 << 16, file);
        let mut writer = None;
        for start in (0..n).step_by(65_536) {
            let end = (start + 65_536).min(n);
            let mut columns = Vec::new();
            let k: Vec<Option<&str>> = codes[start..end].iter().map(|&c| Some(keys[c as usize].as_str())).collect();
            columns.push(Series::new("unique_id".into(), k).into_column());
            columns.push(Int64Chunked::from_vec("ds".into(), times[start..end].to_vec()).into_datetime(TimeUnit::Milliseconds, None).into_series().into_column());
            for (j, c) in data.iter().enumerate() {
                let s = if viaopt {
                    let v: Vec<Option<f64>> = c[start..end].iter().map(|x| (!x.is_nan()).then_some(*x)).collect();
                    Series::new(format!("c{j}").into(), v)
                } else {
                    Float64Chunked::from_vec(format!("c{j}").into(), c[start..end].to_vec()).into_series()
                };
                columns.push(s.into_column());
            }
            let df = DataFrame::new(end - start, columns).unwrap();
            if writer.is_none() {
                let w = ParquetWriter::new(out.try_clone_dummy()).with_compression(comp).with_statistics(if stats { StatisticsOptions::full() } else { StatisticsOptions::empty() });
                writer = Some(w.batched(df.schema()).unwrap());
            }
            writer.as_mut().unwrap().write_batch(&df).unwrap();
        }
        writer.unwrap().finish().unwrap();
        println!("{label}: {:.3} s, {:.1} MB", t0.elapsed().as_secs_f64(), std::fs::metadata("/tmp/pf/exp.parquet").unwrap().len() as f64 / 1e6);
    }
}
trait Dummy { fn try_clone_dummy(&self) -> std::io::BufWriter<std::fs::File>; }
impl Dummy for std::io::BufWriter<std::fs::File> { fn try_clone_dummy(&self) -> std::io::BufWriter<std::fs::File> { std::io::BufWriter::with_capacity(1<<16, self.get_ref().try_clone().unwrap()) } }
