// The lowest supported Express and Koa releases, installed as aliases (see package.json); they ship
// no types of their own, so they borrow those of their major version's alias.
declare module 'express4-lowest' {
  import express from 'express4';
  export default express;
}
declare module 'express5-lowest' {
  import express from 'express';
  export default express;
}
declare module 'koa2-lowest' {
  import Koa from 'koa2';
  export default Koa;
}
declare module 'koa3-lowest' {
  import Koa from 'koa';
  export default Koa;
}
