fn main() {
    let p = std::env::args().nth(1).unwrap();
    match vxmesh::inventory::load(std::path::Path::new(&p)) {
        Ok(i) => println!("{i:#?}"),
        Err(e) => println!("{e}"),
    }
}
