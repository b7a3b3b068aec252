// An independent check of openapi.yaml: swagger-parser validates it against the OpenAPI schema and resolves every $ref.
import SwaggerParser from '@apidevtools/swagger-parser';

const api = await SwaggerParser.validate(new URL('../openapi.yaml', import.meta.url).pathname);
console.log(`openapi.yaml is valid OpenAPI ${api.openapi}: ${Object.keys(api.paths).length} paths`);
