//! The OpenAPI import's tests: whole documents in, endpoints or the user-facing message out.

use serde_json::json;

use super::refs::{nesting, MAX_RESULT_NESTING};
use super::*;

fn err(text: &str) -> String {
    match parse(text) {
        Err(DomainError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

const LOANS: &str = r##"
openapi: 3.0.3
info:
  title: Loans
  description: |
    Apply for loans and follow their approval.
  version: 1.2.0
servers:
  - url: https://loans.example.com/v1
paths:
  /loans/{loanId}/approval:
    parameters:
      - $ref: '#/components/parameters/LoanId'
    post:
      operationId: approveLoan
      summary: Approve a loan
      x-portcullis-scope: loans:approve
      x-portcullis-sensitive: true
      parameters:
        - name: loanId
          in: path
          required: true
          description: The loan to approve.
          schema:
            type: string
            format: uuid
        - name: X-Request-Id
          in: header
          schema:
            type: string
      responses:
        204:
          description: Approved.
        409:
          $ref: '#/components/responses/Problem'
  /loans:
    summary: The loans of the caller
    get:
      operationId: listLoans
      summary: List loans
      parameters:
        - name: status
          in: query
          schema:
            type: string
            enum: [pending, approved, rejected]
      responses:
        200:
          description: The loans.
          content:
            application/json:
              schema:
                type: array
                items:
                  $ref: '#/components/schemas/Loan'
    post:
      operationId: applyForLoan
      description: |

        Apply for a loan.
        The amount is in cents.
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/LoanApplication'
      responses:
        201:
          description: Created.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Loan'
        default:
          $ref: '#/components/responses/Problem'
  /loans/{loanId}:
    parameters:
      - $ref: '#/components/parameters/LoanId'
    get:
      operationId: getLoan
      summary: Get a loan
      x-portcullis-sensitive: true
      responses:
        200:
          description: The loan.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Loan'
        404:
          $ref: '#/components/responses/Problem'
    delete:
      operationId: withdrawLoan
      summary: Withdraw a pending application
      responses:
        204:
          description: Withdrawn.
components:
  parameters:
    LoanId:
      name: loanId
      in: path
      required: true
      schema:
        type: string
  responses:
    Problem:
      description: A problem.
      content:
        application/problem+json:
          schema:
            type: object
  schemas:
    Money:
      type: integer
      minimum: 1
    LoanApplication:
      type: object
      required: [amount]
      properties:
        amount:
          $ref: '#/components/schemas/Money'
        purpose:
          type: string
    Loan:
      type: object
      properties:
        id:
          type: string
        amount:
          $ref: '#/components/schemas/Money'
        status:
          type: string
          default: pending
"##;

#[test]
fn imports_a_yaml_3_0_document() {
    let api = parse(LOANS).unwrap();
    assert_eq!(api.title, "Loans");
    assert_eq!(api.description, "Apply for loans and follow their approval.");
    let summary: Vec<(&str, &str, &str, &str, &str, bool)> = api
        .endpoints
        .iter()
        .map(|e| {
            (
                e.method.as_str(),
                e.path_template.as_str(),
                e.operation_id.as_str(),
                e.summary.as_str(),
                e.scope.as_str(),
                e.sensitive,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("GET", "/loans", "listLoans", "List loans", "read", false),
            ("POST", "/loans", "applyForLoan", "Apply for a loan.", "write", false),
            ("GET", "/loans/{loanId}", "getLoan", "Get a loan", "read", true),
            ("DELETE", "/loans/{loanId}", "withdrawLoan", "Withdraw a pending application", "write", false),
            ("POST", "/loans/{loanId}/approval", "approveLoan", "Approve a loan", "loans:approve", true),
        ]
    );
    let [list, apply, get, withdraw, approve] = api.endpoints.as_slice() else {
        panic!("five endpoints");
    };
    let loan = json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" },
            "amount": { "type": "integer", "minimum": 1 },
            "status": { "type": "string", "default": "pending" }
        }
    });

    assert_eq!(
        list.parameters,
        vec![json!({
            "name": "status",
            "in": "query",
            "schema": { "type": "string", "enum": ["pending", "approved", "rejected"] }
        })]
    );
    assert_eq!(list.request_schema, None);
    assert_eq!(list.response_schema, Some(json!({ "type": "array", "items": loan })));

    assert!(apply.parameters.is_empty());
    assert_eq!(
        apply.request_schema,
        Some(json!({
            "type": "object",
            "required": ["amount"],
            "properties": {
                "amount": { "type": "integer", "minimum": 1 },
                "purpose": { "type": "string" }
            }
        }))
    );
    assert_eq!(apply.response_schema, Some(loan.clone()));

    let loan_id = json!({
        "name": "loanId", "in": "path", "required": true, "schema": { "type": "string" }
    });
    assert_eq!(get.parameters, vec![loan_id.clone()]);
    assert_eq!(get.response_schema, Some(loan));
    assert_eq!(withdraw.parameters, vec![loan_id]);
    assert_eq!(withdraw.response_schema, None);

    // The operation's loanId replaces the path item's.
    assert_eq!(
        approve.parameters,
        vec![
            json!({
                "name": "loanId",
                "in": "path",
                "required": true,
                "description": "The loan to approve.",
                "schema": { "type": "string", "format": "uuid" }
            }),
            json!({ "name": "X-Request-Id", "in": "header", "schema": { "type": "string" } }),
        ]
    );
    assert_eq!(approve.request_schema, None);
    // 204 documents no body; the 409 problem is not a success.
    assert_eq!(approve.response_schema, None);
}

#[test]
fn imports_a_json_3_1_document() {
    let doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "Widgets" },
        "paths": {
            "x-internal": { "note": "an extension, not a path" },
            "/widgets/": {
                "servers": [{ "url": "https://w.example.com" }],
                "put": {
                    "description": "Replace all widgets.\nSecond line.",
                    "x-portcullis-scope": "  ",
                    "requestBody": { "$ref": "#/components/requestBodies/Widgets" },
                    "responses": {
                        "2XX": {
                            "content": {
                                "text/plain": { "schema": { "type": "string" } },
                                "application/vnd.widgets+json": {
                                    "schema": {
                                        "$ref": "#/components/schemas/Widget",
                                        "description": "The widget as stored."
                                    }
                                }
                            }
                        }
                    }
                },
                "head": { "responses": {} }
            }
        },
        "components": {
            "requestBodies": {
                "Widgets": {
                    "content": {
                        "application/json; charset=utf-8": {
                            "schema": {
                                "type": "array",
                                "items": { "$ref": "#/components/schemas/Widget" }
                            }
                        }
                    }
                }
            },
            "schemas": {
                "Widget": {
                    "type": "object",
                    "description": "A widget.",
                    "properties": {
                        "name": { "type": ["string", "null"] },
                        "$ref": { "type": "string" }
                    }
                }
            }
        }
    });
    let api = parse(&serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    assert_eq!(api.title, "Widgets");
    assert_eq!(api.description, "");
    let [put, head] = api.endpoints.as_slice() else {
        panic!("two endpoints: {:?}", api.endpoints);
    };
    let widget = json!({
        "type": "object",
        "description": "A widget.",
        "properties": {
            "name": { "type": ["string", "null"] },
            "$ref": { "type": "string" }
        }
    });
    assert_eq!((put.method.as_str(), put.path_template.as_str()), ("PUT", "/widgets"));
    assert_eq!(put.operation_id, "");
    assert_eq!(put.summary, "Replace all widgets.");
    assert_eq!(put.scope, "write");
    assert!(!put.sensitive);
    assert_eq!(put.request_schema, Some(json!({ "type": "array", "items": widget })));
    let mut described = widget;
    described["description"] = json!("The widget as stored.");
    assert_eq!(put.response_schema, Some(described));

    assert_eq!((head.method.as_str(), head.scope.as_str()), ("HEAD", "read"));
    assert_eq!(head.summary, "");
    assert!(head.parameters.is_empty());
    assert_eq!(head.request_schema, None);
    assert_eq!(head.response_schema, None);
}

#[test]
fn accepts_an_unquoted_version_and_escaped_pointers() {
    let api = parse(
        r##"
openapi: 3.1
paths:
  /a:
    get:
      parameters:
        - $ref: '#/x-shared/a~1b~0c/%7Bp%7D'
      responses:
        default:
          content:
            text/csv:
              schema: { type: string }
x-shared:
  a/b~c:
    '{p}': { name: p, in: query }
"##,
    )
    .unwrap();
    let [get] = api.endpoints.as_slice() else {
        panic!("one endpoint");
    };
    assert_eq!(get.parameters, vec![json!({ "name": "p", "in": "query" })]);
    // No 2xx response: `default`'s schema, of the only content type.
    assert_eq!(get.response_schema, Some(json!({ "type": "string" })));
}

#[test]
fn refuses_swagger_2_and_other_versions() {
    let m = err(r#"{"swagger": "2.0", "info": {"title": "Old"}, "paths": {}}"#);
    assert!(m.contains("Swagger 2.0"), "{m}");
    assert!(m.contains("only OpenAPI 3.x"), "{m}");
    let m = err("openapi: 4.0.0\npaths: {}\n");
    assert!(m.contains("Only OpenAPI 3.x documents can be imported; this one says `openapi: 4.0.0`"), "{m}");
    let m = err("info:\n  title: Nothing\n");
    assert!(m.contains("no `openapi` field"), "{m}");
}

#[test]
fn refuses_what_is_not_a_document() {
    assert!(err("").contains("expected an object"));
    assert!(err("- a\n- b\n").contains("expected an object"));
    assert!(err("{\"openapi\": ").contains("not valid JSON"));
    assert!(err("openapi: [unclosed\n").contains("not valid YAML"));
    // Nesting beyond the parsers' limits is an error, not a stack overflow.
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(err(&deep).contains("not valid JSON"));
    let deep = format!("a: {}1{}", "[".repeat(500), "]".repeat(500));
    assert!(err(&deep).contains("not valid YAML"));
    // 2 MiB of `[` is refused at the nesting limit, in one pass.
    let started = std::time::Instant::now();
    let deep = format!("a: {}", "[".repeat(MAX_DOCUMENT_BYTES - 3));
    assert!(err(&deep).contains("not valid YAML"));
    assert!(err(&deep).contains("nests more than 64 levels deep"), "{}", err(&deep));
    let block = |levels: usize| (0..levels).map(|i| format!("{}k:\n", "  ".repeat(i))).collect::<String>();
    assert!(err(&block(300)).contains("nests more than 64 levels deep"), "block nesting is bounded too");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    // At the limit, flow or block, it is read whole on a test thread's 2 MiB stack (a
    // tokio worker's): the limit is below what the stack holds.
    let at_limit = format!("a: {}1{}", "[".repeat(63), "]".repeat(63));
    assert!(err(&at_limit).contains("no `openapi` field"), "{}", err(&at_limit));
    assert!(err(&block(64)).contains("no `openapi` field"));
    // Two documents, or an include, are not one OpenAPI document; nothing is read
    // from the disk.
    assert!(err("openapi: 3.0.0\n---\nopenapi: 3.1.0\n").contains("not valid YAML"));
    let include = err("openapi: 3.0.0\ninfo: !include /etc/passwd\npaths: {}\n");
    assert!(!include.contains("root:"), "{include}");
}

#[test]
fn refuses_documents_without_operations() {
    for doc in [
        "openapi: 3.0.0\ninfo: {title: Empty}\npaths: {}\n",
        "openapi: 3.1.0\ninfo: {title: Hooks}\nwebhooks: {}\n",
        "openapi: 3.0.0\npaths:\n  /a:\n    parameters: []\n    summary: nothing here\n",
    ] {
        assert!(err(doc).contains("describes no operations"), "{doc}");
    }
}

#[test]
fn refuses_remote_and_dangling_references() {
    let m = err("openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          \
         application/json:\n            schema:\n              $ref: 'common.yaml#/Thing'\n");
    assert!(m.starts_with("paths./a.post.requestBody"), "{m}");
    assert!(m.contains("`common.yaml#/Thing` refers to another document"), "{m}");

    let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        \
         - $ref: '#/components/parameters/Nope'\n");
    assert!(m.starts_with("paths./a.get.parameters[0]: `#/components/parameters/Nope` points at nothing"), "{m}");
}

#[test]
fn refuses_an_invalid_path_template_with_its_location() {
    let m = err("openapi: 3.0.0\npaths:\n  /accounts/{id}.json:\n    get: {}\n");
    assert_eq!(
        m,
        "paths./accounts/{id}.json: `/accounts/{id}.json` is not a path template like \
         /accounts/{id}."
    );
}

#[test]
fn refuses_bad_extensions_with_their_location() {
    let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      x-portcullis-sensitive: 'yes'\n");
    assert_eq!(m, "paths./a.get.x-portcullis-sensitive: expected true or false.");
    let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      x-portcullis-scope: 3\n");
    assert!(m.starts_with("paths./a.get.x-portcullis-scope:"), "{m}");
    let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      x-portcullis-scope: read write\n");
    assert!(m.contains("holds a space"), "{m}");
    let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - in: query\n");
    assert!(m.starts_with("paths./a.get.parameters[0]: a parameter needs"), "{m}");
}

#[test]
fn refuses_duplicate_operations() {
    let m = err("openapi: 3.0.0\npaths:\n  /a/:\n    get: {}\n  /a:\n    get: {}\n    post: {}\n");
    assert_eq!(m, "paths./a and paths./a/ both describe GET /a; keep only one of them.");
}

#[test]
fn refuses_too_many_operations() {
    let mut paths = Map::new();
    for i in 0..=MAX_OPERATIONS {
        paths.insert(format!("/r{i}"), json!({ "get": {} }));
    }
    let doc = json!({ "openapi": "3.0.0", "paths": paths }).to_string();
    assert!(err(&doc).contains("more than 500 operations"));
    paths.remove("/r0");
    let doc = json!({ "openapi": "3.0.0", "paths": paths }).to_string();
    assert_eq!(parse(&doc).unwrap().endpoints.len(), MAX_OPERATIONS);
}

#[test]
fn refuses_an_oversize_document() {
    let doc = format!("openapi: 3.0.0\npaths:\n  /a:\n    get: {{}}\n# {}\n", "x".repeat(MAX_DOCUMENT_BYTES));
    let m = err(&doc);
    assert!(m.contains("at most 2048 KiB"), "{m}");
}

#[test]
fn leaves_cyclic_schemas_as_references() {
    let api = parse(
        r##"
openapi: 3.0.0
paths:
  /nodes:
    get:
      responses:
        '200':
          content:
            application/json:
              schema: { $ref: '#/components/schemas/Node' }
components:
  schemas:
    Node:
      type: object
      properties:
        children:
          type: array
          items: { $ref: '#/components/schemas/Node' }
        self: { $ref: '#/components/schemas/Loop' }
    Loop: { $ref: '#/components/schemas/Loop' }
"##,
    )
    .unwrap();
    let [get] = api.endpoints.as_slice() else {
        panic!("one endpoint");
    };
    assert_eq!(
        get.response_schema,
        Some(json!({
            "type": "object",
            "properties": {
                "children": {
                    "type": "array",
                    "items": { "$ref": "#/components/schemas/Node" }
                },
                "self": { "$ref": "#/components/schemas/Loop" }
            }
        }))
    );
}

#[test]
fn a_request_body_that_refers_to_itself_is_refused() {
    let m = err("openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody:\n        \
         $ref: '#/components/requestBodies/B'\ncomponents:\n  requestBodies:\n    B:\n      \
         $ref: '#/components/requestBodies/B'\n");
    assert!(m.contains("refers back to itself"), "{m}");
}

#[test]
fn exponential_expansion_is_bounded() {
    // S0 refers to S1 twice, S1 to S2 twice, …: 2^40 leaves if fully expanded.
    let mut schemas = Map::new();
    for i in 0..40 {
        let next = format!("#/components/schemas/S{}", i + 1);
        schemas.insert(
            format!("S{i}"),
            json!({ "type": "object", "properties": {
                "a": { "$ref": next }, "b": { "$ref": next }
            }}),
        );
    }
    schemas.insert("S40".into(), json!({ "type": "string" }));
    let doc = json!({
        "openapi": "3.1.0",
        "paths": { "/x": { "post": { "requestBody": { "content": {
            "application/json": { "schema": { "$ref": "#/components/schemas/S0" } }
        }}}}},
        "components": { "schemas": schemas }
    });
    let api = parse(&doc.to_string()).unwrap();
    let schema = api.endpoints.first().unwrap().request_schema.as_ref().unwrap();
    assert!(schema.to_string().len() < 200 * 1024 * 1024);
    assert!(nesting(schema, 0) <= MAX_RESULT_NESTING);
}

#[test]
fn literal_data_is_not_searched_for_references() {
    let api = parse(
        r##"{
  "openapi": "3.0.1",
  "paths": { "/a": { "post": { "requestBody": { "content": { "application/json": {
    "schema": {
      "type": "object",
      "example": { "$ref": "elsewhere.json" },
      "properties": { "default": { "$ref": "#/components/schemas/S" } }
    }
  }}}}}},
  "components": { "schemas": { "S": { "type": "integer" } } }
}"##,
    )
    .unwrap();
    assert_eq!(
        api.endpoints.first().unwrap().request_schema,
        Some(json!({
            "type": "object",
            "example": { "$ref": "elsewhere.json" },
            "properties": { "default": { "type": "integer" } }
        }))
    );
}
