/** Module declarations for files imported as embedded assets (`with { type: 'file' | 'text' }`). */
declare module 'swagger-ui-dist/swagger-ui-bundle.js' {
  const path: string;
  export default path;
}
declare module '*.css' {
  const path: string;
  export default path;
}
declare module '*.txt' {
  const text: string;
  export default text;
}
