// Prepended to every kernel module (shaderModule in src/gpu/kernel.ts).
//
// WORKGROUP_SIZE: threads per workgroup of the 1-D kernels. The host always passes the same value
// as the pipeline constant (WORKGROUP_SIZE in src/gpu/kernel.ts); the default only keeps the module
// valid on its own.
// Large dispatches spread their workgroups over a 2-D grid (x at most
// maxComputeWorkgroupsPerDimension); these helpers turn (workgroup id, grid) back into 1-D indices.

override WORKGROUP_SIZE: u32 = 256u;

fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn global_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return workgroup_index(wid, nwg) * WORKGROUP_SIZE + lid;
}
